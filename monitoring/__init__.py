"""Monitoring: drift reports and alerts over the production log (docs/monitoring.md).

The statistics live in ``components/drift/statistics.py``; this package reads the log (``log``), cuts windows
(``windows``), writes reports (``drift_report``) and the history (``history``), sends alerts (``alerts``), and runs
the ``monitor`` step (``monitor``) behind `emosafe monitor`.
"""
