"""Per-model peak memory: a reset mark must forget an earlier, larger allocation (else the scaling plot lies)."""

from __future__ import annotations

import numpy as np

from components.evaluation.memory import read_peak, reset_peak


def test_reset_peak_forgets_an_earlier_larger_allocation() -> None:
    big = np.ones(300_000_000 // 8)  # ~300 MB touched
    big_peak = read_peak(reset_peak()).peak_rss_mb
    del big
    was_reset = reset_peak()
    small = np.ones(50_000_000 // 8)  # ~50 MB
    peak = read_peak(was_reset)
    del small
    if not was_reset:  # kernels without clear_refs: the figure is the lifetime peak, and says so
        assert peak.method == "ru_maxrss"
        return
    assert peak.method == "vmhwm_reset"
    assert peak.peak_rss_mb < big_peak - 150
