"""Report: the scaling report's rows and figures, and the end-of-run summary."""
