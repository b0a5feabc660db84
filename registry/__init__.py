"""Model registry: stores versions, moves aliases, keeps the audit history.

Not built yet (issue "Model registry with per-category F1 promotion gate"): this package only reserves the name.
The decision logic will live in ``components/promotion.py``; this package only stores and moves.
"""
