"""Frozen sentence vectors for label-quality probes: a small encoder, mean-pooled over each message's tokens.

Why a frozen encoder and not the classifier being trained: confident learning needs out-of-fold probabilities from a
model that did not see the row it scores. A linear probe on frozen MiniLM vectors is cheap enough to fit once per
fold on 2 CPU cores (seconds), and it does not share the ladder's own biases about a source.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from components.errors import EmosafeError


def encoder_folder(location: str, root: Path) -> Path:
    """A sentence encoder's folder: ``pkg:<package>/<subdir>`` (a model shipped in a wheel, e.g. MiniLM) or a
    folder under ``root``. Raises when it holds no model (config.json)."""
    from components.models import PACKAGE_PREFIX, ModelSource, resolve

    folder = Path(resolve(ModelSource(location))) if location.startswith(PACKAGE_PREFIX) else root / location
    if not (folder / "config.json").is_file():
        raise EmosafeError(f"{folder}: no encoder here (config.json missing; curate.embedder)")
    return folder


def embed(folder: Path, texts: Sequence[str], max_length: int = 128, batch_size: int = 64) -> NDArray[np.float32]:
    """Unit-length mean-pooled vectors (n, hidden) of ``texts`` from the encoder saved in ``folder``."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths per batch: less padding
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc="embed", unit="batch", leave=False):
            rows = order[start : start + batch_size]
            batch = [texts[i] for i in rows]
            enc = tokenizer(batch, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out
