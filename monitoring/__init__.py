"""Monitoring: drift reports and alerts over the production log.

Not built yet (issue "Monitoring: label-distribution drift"): this package only reserves the name. The
statistics will live in ``components/drift.py``; this package reports and alerts.
"""
