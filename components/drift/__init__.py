"""Drift: the statistics that compare production windows with a version's reference, and the reference itself."""
