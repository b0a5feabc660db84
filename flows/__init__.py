"""Thin Prefect 3 flows: they call the same stage functions as the CLI and DVC, and hold no logic of their own."""
