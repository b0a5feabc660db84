"""The ``emosafe`` command line (app layer): ``app`` with every sub-command registered, and ``main``.

``app.py`` holds the Typer app and the entry point, ``stage_commands.py`` one command per pipeline stage,
``operations.py`` the operating commands (predict, monitor, reevaluate, serve, ...), ``site.py`` the static HTML
site (`emosafe site`).
"""

from components.cli import operations, site, stage_commands
from components.cli.app import app, main

__all__ = ["app", "main", "operations", "site", "stage_commands"]
