"""Tiny export fixtures: a LLaMA (2 layers, hidden 32) with LoRA saved exactly as `emosafe train` saves a run,
the SmolLM2 tokenizer, a tiny dataset with a test split, and malicious ONNX files for the safety checks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from components.schema import CATEGORIES, LABELS
from components.text import text_hash
from tests.conftest import TINY_ROWS

CANARY = "zebra-canary-5512 nobody may read this"


def save_tokenizer(folder: Path) -> Path:
    from components.models import SMOLLM2, load_tokenizer

    load_tokenizer(SMOLLM2).save_pretrained(folder)
    return folder


def tiny_run(root: Path, tokenizer_dir: Path, task: str = "trinary", seed: int = 0) -> Path:
    """models/tiny-<task>/ with adapter/ (LoRA B randomised so merging matters), labels.json, meta.json."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoTokenizer, LlamaForCausalLM, LlamaForSequenceClassification

    from components.models import tiny_llama_config

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    base = root / "models" / "base" / "tiny"
    config = tiny_llama_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id, initializer_range=0.2)
    LlamaForCausalLM(config).save_pretrained(base, safe_serialization=True)
    tokenizer.save_pretrained(base)
    names = LABELS if task == "trinary" else CATEGORIES
    model = LlamaForSequenceClassification.from_pretrained(
        base, num_labels=len(names), pad_token_id=tokenizer.pad_token_id
    )
    lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    peft_model = get_peft_model(model, lora)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
            if "score" in name:
                param.normal_(0, 1.0)
    run = root / "models" / f"tiny-{task}"
    peft_model.save_pretrained(run / "adapter", safe_serialization=True)
    tokenizer.save_pretrained(run / "adapter")
    config_path = run / "adapter" / "adapter_config.json"
    adapter = json.loads(config_path.read_text())
    adapter["base_model_name_or_path"] = "models/base/tiny"  # relative to the project, as `emosafe train` writes it
    config_path.write_text(json.dumps(adapter))
    (run / "labels.json").write_text(
        json.dumps({"task": task, "labels": list(names), "multi_label": task != "trinary"})
    )
    meta = {
        "stage": "train",
        "seed": 13,
        "data_hash": "d" * 64,
        "fingerprint": "f" * 64,
        "params": {"spec": {"family": "llama", "convert": True}, "hyper": {"max_length": 32}},
        "base_model": {"name": "tiny", "source": "models/base/tiny", "revision": None},
    }
    (run / "meta.json").write_text(json.dumps(meta))
    return run


def tiny_dataset(path: Path) -> Path:
    """TINY_ROWS three times: copy 0 train, 1 val, 2 test (the canary sits in test, so parity sees it)."""
    rows = []
    for copy, split in enumerate(("train", "val", "test")):
        for row in [*TINY_ROWS, {"id": "canary", "text": CANARY, "label": "unsafe", "categories": ["violence_hate"]}]:
            text = row["text"] if copy == 0 else f"{row['text']} ({split})"
            rows.append(
                {
                    "id": f"{row['id']}-{split}",
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
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def params_dict(**export: Any) -> dict[str, Any]:
    return {
        "seed": 13,
        "prepare": {"sources": [{"name": "tiny", "kind": "emosafe", "path": "data/tiny.jsonl"}]},
        "evaluate": {"bootstrap_resamples": 50},
        "export": {
            "model": "tiny",
            "tasks": ["trinary"],
            "input": "data/dataset.parquet",
            "parity_messages": 12,
            "batch_size": 16,
            **export,
        },
        "predict": {"log": "logs/predictions.jsonl", "batch_size": 256},
    }


def external_onnx(folder: Path, location: str, name: str = "model.onnx") -> Path:
    """A one-node ONNX graph (Y = X + W) whose initializer W points at external data ``location``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones(4, dtype=np.float32), "W")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])],
        initializer=[weight],
    )
    path = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph), str(path))
    return path


def write_weights(path: Path) -> Path:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.ones(4, dtype=np.float32).tobytes())
    return path


def symlink(target: Path, link: Path) -> Path:
    os.symlink(target, link)
    return link
