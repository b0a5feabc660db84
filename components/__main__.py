"""``python -m components`` runs the emosafe CLI (same as the ``emosafe`` command)."""

from components.cli import main

main()
