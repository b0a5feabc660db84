"""Release: the figures the promotion gate sees, the gate's decision, and re-evaluation against its floors."""
