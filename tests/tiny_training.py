"""Helpers for the training tests: tiny LLaMA / BERT folders (MiniLM's tokenizer), a tiny dataset, params files.

A tiny LLaMA (2 layers, hidden 32) runs the same code path as the real ladder in milliseconds per step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from components.schema import CATEGORIES
from components.text import text_hash
from tests.conftest import TINY_ROWS

CANARY = "zebra-canary-7731 my secret plan"


def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from components.models import MINILM, resolve

    return AutoTokenizer.from_pretrained(resolve(MINILM))


def tiny_llama_folder(path: Path, seed: int = 0, hidden_size: int = 32) -> Path:
    import torch
    from transformers import LlamaForCausalLM

    from components.models import tiny_llama_config

    tok = tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(tok.vocab_size, hidden_size=hidden_size, pad_token_id=tok.pad_token_id))
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def tiny_bert_folder(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    tok = tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def tiny_frame(copies: int = 2, canary: bool = True) -> pd.DataFrame:
    """TINY_ROWS repeated (train) plus one copy each for val; the canary text sits in train and val."""
    rows = []
    for copy in range(copies + 1):
        split = "val" if copy == copies else "train"
        for i, row in enumerate(TINY_ROWS):
            text = row["text"] if copy == 0 else f"{row['text']} ({copy})"
            if canary and i == 0 and copy in (0, copies):
                text = CANARY
            rows.append(
                {
                    "id": f"{row['id']}-{copy}",
                    "text": text,
                    "label": row["label"],
                    **{c: c in row["categories"] for c in CATEGORIES},
                    "source": "tiny",
                    "origin": "human",
                    "parent_id": None,
                    "split": split,
                    "text_hash": text_hash(text),
                }
            )
    return pd.DataFrame(rows)


def write_project(root: Path, models: dict[str, dict[str, Any]], **overrides: Any) -> Path:
    """A params.yaml whose `tiny` profile holds ``models``; overrides go into the profile (hyper, hardware...)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    tiny_frame().to_parquet(root / "data" / "dataset.parquet", index=False)
    profile = {
        "models": models,
        "hyper": {"epochs": 2, "batch_size": 8, "max_length": 32, "lr": 0.01} | overrides.pop("hyper", {}),
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0} | overrides.pop("lora", {}),
        "hardware": {"num_threads": 1, "checkpoint_every": 4} | overrides.pop("hardware", {}),
    }
    train = {
        "profile": "tiny",
        "profiles": {"tiny": profile},
        "input": "data/dataset.parquet",
        "wandb": {"enabled": False, "dir": "."},
    } | overrides
    params = {"seed": 7, "prepare": {"sources": [{"name": "s", "kind": "emosafe", "path": "x.jsonl"}]}, "train": train}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path
