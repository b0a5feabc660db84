"""A byte-level tokenizer and a tiny random LLaMA for evaluation tests: built in milliseconds, no files needed.

Byte-level means every answer word spans several tokens, so the multi-token scoring path is exercised too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

EOS = "<eos>"


def byte_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {symbol: i for i, symbol in enumerate(sorted(ByteLevel.alphabet()))}
    vocab[EOS] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, pad_token=EOS)


def tiny_llama(vocab_size: int, seed: int = 0) -> Any:
    import torch
    from transformers import LlamaForCausalLM

    from components.models import tiny_llama_config

    torch.manual_seed(seed)
    config = tiny_llama_config(vocab_size, num_layers=2, hidden_size=32)
    config.max_position_embeddings = 4096  # byte-level prompts are long; RoPE itself has no hard limit
    return LlamaForCausalLM(config).eval()


def save_tiny_lm(folder: Path, seed: int = 0) -> Path:
    """A tiny causal LM + tokenizer saved as a Hugging Face folder (what an offline mirror looks like)."""
    tokenizer = byte_tokenizer()
    model = tiny_llama(len(tokenizer), seed)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_frame() -> Any:
    """The conftest's 30 hand-written rows as a dataset frame; every third row in val, every third in test."""
    import pandas as pd

    from components.schema import CATEGORIES
    from tests.conftest import TINY_ROWS

    splits = ("train", "val", "test")
    rows = [
        {
            "id": row["id"],
            "text": row["text"],
            "label": row["label"],
            **{c: c in row["categories"] for c in CATEGORIES},
            "source": "tiny",
            "origin": "human",
            "parent_id": None,
            "split": splits[i % 3],
            "text_hash": f"h{i}",
        }
        for i, row in enumerate(TINY_ROWS)
    ]
    return pd.DataFrame(rows)
