"""Evaluation: predictors, prompting, the one measuring path, metrics with intervals, canaries, memory."""
