"""Peak resident memory of this process, resettable, so each evaluated model gets its own figure.

``ru_maxrss`` only ever grows, so in one ``evaluate`` process every later model would inherit the largest earlier
peak (the scaling report's "F1 vs peak inference memory" plot would then be wrong). On Linux, writing ``5`` to
``/proc/self/clear_refs`` resets the high-water mark (``VmHWM``) to the current RSS; we do that before each model's
inference and read ``VmHWM`` after it. Where that is not allowed (other kernels, locked-down containers) we fall back
to ``ru_maxrss`` and say so in ``method``, so a report never passes off a process-lifetime peak as a per-model one.
"""

from __future__ import annotations

import gc
import resource
from dataclasses import dataclass
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


@dataclass(frozen=True)
class PeakMemory:
    peak_rss_mb: float
    method: str  # "vmhwm_reset" (per model) | "ru_maxrss" (process lifetime: an upper bound)


def reset_peak() -> bool:
    """Collect garbage, then reset the kernel's peak-RSS mark; False when the kernel refuses."""
    gc.collect()
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _vmhwm_kb() is not None


def read_peak(was_reset: bool) -> PeakMemory:
    """The peak since ``reset_peak`` when it worked, else the process-lifetime peak (labelled as such)."""
    kb = _vmhwm_kb() if was_reset else None
    if kb is not None:
        return PeakMemory(round(kb / 1024, 1), "vmhwm_reset")
    return PeakMemory(round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "ru_maxrss")


def _vmhwm_kb() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None
