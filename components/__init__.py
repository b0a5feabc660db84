"""emosafe components: the pure, typed logic every stage, CLI command and flow calls.

Modules here know nothing of Prefect, DVC or the CLI. The few app-layer modules that touch disk or argv are
named in ``APP_LAYER`` so a test can hold the rest to that rule.
"""

__version__ = "0.1.0"

#: Modules allowed to import orchestration / CLI libraries and to touch the filesystem directly.
APP_LAYER = frozenset({"components.cli", "components.stages", "components.io", "components.serving"})


def is_app_layer(module: str) -> bool:
    """True for the CLI, I/O helpers, every stage module (``components.stages.*``) and the prediction service."""
    return any(module == name or module.startswith(name + ".") for name in APP_LAYER)
