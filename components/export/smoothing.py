"""SmoothQuant-style rescaling of a LLaMA MLP before int8 export: the fp32 function stays the same, the
``down_proj`` input loses its activation outliers.

Why: SmolLM2's ``down_proj`` inputs carry a few channels up to ~3000 against ~2 typical (docs/export.md "Choosing
the int8 recipe"); one activation scale per tensor (``quantize_dynamic``) then rounds every other channel to zero.
The MLP computes ``down(silu(gate(x)) * up(x))``, so dividing ``up_proj``'s output row ``j`` by ``s_j`` and
multiplying ``down_proj``'s input column ``j`` by ``s_j`` leaves the output unchanged (exactly, up to float
rounding) while the activation of channel ``j`` shrinks by ``s_j``. ``s_j = max|X_j|^alpha / max|W_j|^(1-alpha)``
(Xiao et al. 2023) moves part of the range into the weights, which are quantized per channel or per block.

Pure torch on an in-memory model (no files); ``max|X_j|`` comes from a calibration pass over a few TRAIN messages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

#: Smallest scale applied (a channel never seen active would otherwise be multiplied by ~0 in the weights).
MIN_SCALE = 1e-5


@dataclass(frozen=True)
class SmoothingInfo:
    """What was rescaled (recorded in quantization.json): alpha, layers, activation peak before/after."""

    alpha: float
    layers: int
    calibration_messages: int
    max_activation_before: float
    max_activation_after: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "layers": self.layers,
            "calibration_messages": self.calibration_messages,
            "max_activation_before": round(self.max_activation_before, 4),
            "max_activation_after": round(self.max_activation_after, 4),
        }


def mlp_pairs(model: Any) -> list[tuple[Any, Any]]:
    """(up_proj, down_proj) of every decoder layer. Raises ValueError for a model without LLaMA-style MLPs."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    pairs = [(layer.mlp.up_proj, layer.mlp.down_proj) for layer in layers or () if hasattr(layer, "mlp")]
    if not pairs or not all(hasattr(up, "weight") and hasattr(down, "weight") for up, down in pairs):
        raise ValueError(f"{type(model).__name__} has no LLaMA-style mlp.up_proj/down_proj layers to smooth")
    return pairs


def activation_peaks(model: Any, batches: Iterable[tuple[Any, Any]]) -> list[Any]:
    """Per layer, max |input| of each ``down_proj`` channel over the real (unpadded) tokens of ``batches``
    (``(input_ids, attention_mask)`` torch tensors)."""
    import torch

    pairs = mlp_pairs(model)
    peaks: list[Any] = [torch.zeros(down.weight.shape[1]) for _, down in pairs]
    current: dict[str, Any] = {}

    def hook(index: int) -> Any:
        def record(_module: Any, inputs: tuple[Any, ...]) -> None:
            values = inputs[0].detach().abs().float()[current["mask"]]  # (real tokens, channels)
            if values.numel():
                peaks[index] = torch.maximum(peaks[index], values.amax(dim=0))

        return record

    handles = [down.register_forward_pre_hook(hook(i)) for i, (_, down) in enumerate(pairs)]
    try:
        with torch.no_grad():
            for input_ids, attention_mask in batches:
                current["mask"] = attention_mask.bool()
                model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        for handle in handles:
            handle.remove()
    return peaks


def smoothing_factors(
    activation_peaks: NDArray[np.float32], weight_peaks: NDArray[np.float32], alpha: float
) -> NDArray[np.float32]:
    """SmoothQuant's per-channel factor ``s = max|X|^alpha / max|W|^(1-alpha)`` (Xiao et al. 2023): dividing the
    activation by ``s`` and multiplying the weight rows by it moves part of an outlier channel's range into the
    weights. A channel never seen active keeps 1. Shared by the torch rescaling here and the per-token graph rewrite
    (components/export/activation_int8.py)."""
    x = np.maximum(activation_peaks.astype(np.float32), MIN_SCALE)
    w = np.maximum(weight_peaks.astype(np.float32), MIN_SCALE)
    factors = np.maximum(x**alpha / w ** (1 - alpha), MIN_SCALE)
    return np.where(activation_peaks > 0, factors, 1.0).astype(np.float32)


def smooth_mlp(model: Any, batches: Iterable[tuple[Any, Any]], alpha: float, messages: int = 0) -> SmoothingInfo:
    """Rescale every layer's up_proj/down_proj pair in place (see the module docstring); returns what changed.

    Raises ValueError for ``alpha`` outside (0, 1] or a model without LLaMA MLPs."""
    import torch

    if not 0 < alpha <= 1:
        raise ValueError(f"smooth_alpha {alpha} must be in (0, 1]")
    pairs = mlp_pairs(model)
    peaks = activation_peaks(model, batches)
    before = after = 0.0
    with torch.no_grad():
        for (up, down), peak in zip(pairs, peaks, strict=True):
            weight_peak = down.weight.abs().amax(dim=0).float()
            scale = torch.from_numpy(smoothing_factors(peak.numpy(), weight_peak.numpy(), alpha))
            up.weight.div_(scale.to(up.weight.dtype).unsqueeze(1))
            if getattr(up, "bias", None) is not None:
                up.bias.div_(scale.to(up.bias.dtype))
            down.weight.mul_(scale.to(down.weight.dtype).unsqueeze(0))
            before, after = max(before, float(peak.max())), max(after, float((peak / scale).max()))
    log.info("smoothed %d MLPs (alpha %.2f): down_proj input peak %.1f -> %.1f", len(pairs), alpha, before, after)
    return SmoothingInfo(alpha, len(pairs), messages, before, after)
