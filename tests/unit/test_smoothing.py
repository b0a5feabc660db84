"""SmoothQuant-style MLP rescaling keeps the fp32 function and removes planted down_proj activation outliers."""

from __future__ import annotations

from typing import Any

import pytest


def _tiny(outliers: float = 1.0) -> Any:
    import torch
    from transformers import LlamaForSequenceClassification

    from components.models import tiny_llama_config

    torch.manual_seed(0)
    model = LlamaForSequenceClassification(tiny_llama_config(64, num_labels=3, pad_token_id=0, initializer_range=0.2))
    with torch.no_grad():  # the SmolLM2 failure: a few huge down_proj input channels, same fp32 function
        for layer in model.model.layers:
            layer.mlp.up_proj.weight[:3] *= outliers
            layer.mlp.down_proj.weight[:, :3] /= outliers
    return model.eval()


def _batches() -> list[tuple[Any, Any]]:
    import torch

    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 64, (4, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # right padding, as in training
    ids[1, 7:] = 0
    return [(ids[:2], mask[:2]), (ids[2:], mask[2:])]


def _logits(model: Any, batches: list[tuple[Any, Any]]) -> Any:
    import torch

    with torch.no_grad():
        return torch.cat([model(input_ids=i, attention_mask=m).logits for i, m in batches])


@pytest.mark.parametrize("alpha", [0.5, 0.8])
def test_smoothing_keeps_the_fp32_logits_and_shrinks_the_outliers(alpha: float) -> None:
    import torch

    from components.export.smoothing import activation_peaks, smooth_mlp

    model, batches = _tiny(outliers=1000.0), _batches()
    before = _logits(model, batches)
    peak_before = max(float(p.max()) for p in activation_peaks(model, batches))
    up = model.model.layers[0].mlp.up_proj.weight.clone()
    info = smooth_mlp(model, batches, alpha, messages=4)
    after = _logits(model, batches)
    assert torch.allclose(before, after, atol=1e-4), float((before - after).abs().max())
    assert not torch.equal(up, model.model.layers[0].mlp.up_proj.weight)  # it really rescaled
    peak_after = max(float(p.max()) for p in activation_peaks(model, batches))
    assert info.layers == 2 and info.alpha == alpha and info.max_activation_before == pytest.approx(peak_before)
    assert peak_after == pytest.approx(info.max_activation_after, rel=1e-3)
    assert peak_after < peak_before / 20  # the planted x1000 channels are tamed


def test_smoothing_rejects_a_bad_alpha_or_a_model_without_llama_mlps() -> None:
    import torch

    from components.export.smoothing import smooth_mlp

    with pytest.raises(ValueError, match="smooth_alpha"):
        smooth_mlp(_tiny(), _batches(), 0.0)
    with pytest.raises(ValueError, match="no LLaMA-style"):
        smooth_mlp(torch.nn.Linear(2, 2), _batches(), 0.5)
