"""Model registry: stores versions, moves aliases, keeps the audit history (docs/registry.md).

The decision logic lives in ``components/release/promotion.py``; this package only stores, verifies and moves. Entry
points: ``registry.core.Registry``, ``registry.core.load_model("emosafe-trinary@production")`` and the
``emosafe registry`` CLI (``registry/commands.py``). Kept import-light so ``emosafe --help`` stays fast.
"""
