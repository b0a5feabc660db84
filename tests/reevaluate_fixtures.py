"""A hand-built exported bundle (word-level tokenizer + a three-node ONNX graph) whose answers are known in advance,
registered and promoted in a throw-away registry, and labelled feedback files for it. Builds in well under a second.

The graph sums one embedding row per token: a marker word ``lbl_<label>`` (trinary) or ``cat_<category>``
(taxonomy) pushes its own logit up by 10, every other word adds nothing. Feedback whose text carries the marker of
its own label is therefore scored perfectly; the same texts with rotated labels are scored as badly as possible.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.schema import CATEGORIES, LABELS
from tests.conftest import TINY_ROWS

CANARY = "quokka-canary-8841 this sentence must never leave the feedback file"
ROTATE = {"safe": "borderline", "borderline": "unsafe", "unsafe": "safe"}


def build_bundle(folder: Path, task: str, thresholds: dict[str, float] | None = None) -> Path:
    """model_int8.onnx + tokenizer.json + labels.json + config.json + meta.json + manifest.json, as export writes."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save
    from tokenizers import Tokenizer, models, pre_tokenizers

    from components.export.bundle import build_manifest, label_map

    names = LABELS if task == "trinary" else CATEGORIES
    markers = [f"lbl_{n}" if task == "trinary" else f"cat_{n}" for n in names]
    vocab = {"[PAD]": 0, "[UNK]": 1, **{m: i + 2 for i, m in enumerate(markers)}}
    folder.mkdir(parents=True)
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    table = np.zeros((len(vocab), len(names)), dtype=np.float32)
    for i in range(len(names)):
        table[i + 2, i] = 10.0
    bias = np.full(len(names), 0.0 if task == "trinary" else -5.0, dtype=np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["embedded"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "last"], ["mask3"]),
        helper.make_node("Mul", ["embedded", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "tokens"], ["summed"], keepdims=0),
        helper.make_node("Add", ["summed", "bias"], ["logits"]),
    ]
    constants = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "last"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "tokens"),
    ]
    graph = helper.make_graph(
        nodes,
        "marker-model",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(names)])],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(folder / "model_int8.onnx"))
    (folder / "labels.json").write_text(json.dumps(label_map(task, 64, thresholds).to_dict()))
    (folder / "config.json").write_text(json.dumps({"pad_token_id": 0}))
    (folder / "meta.json").write_text(json.dumps({"stage": "export", "data_hash": "d" * 64, "seed": 13}))
    (folder / "manifest.json").write_text(json.dumps(build_manifest(folder)))
    return folder


def production(project: Path, task: str, thresholds: dict[str, float] | None = None) -> str:
    """Register a bundle for ``task`` in ``project/store`` and move production to it; returns ``name@production``."""
    from components.config.register import GateConfig
    from registry.core import Registry
    from registry.names import parse_ref
    from tests.registry_fixtures import taxonomy_metrics, trinary_metrics

    registry = Registry(project / "store", GateConfig())
    metrics = trinary_metrics() if task == "trinary" else taxonomy_metrics()
    bundle = build_bundle(project / f"bundle-{task}", task, thresholds)
    record, _ = registry.register(bundle, metrics, project=project)
    registry.promote(parse_ref(f"{record.name}@{record.version}"), "production", "first release")
    return f"{record.name}@production"


def feedback_rows(rotate: bool = False, canary: bool = True) -> list[dict[str, Any]]:
    """TINY_ROWS with their labels' markers in the text (the model is right), or with rotated labels (wrong)."""
    rows = [
        *TINY_ROWS,
        *([{"id": "c1", "text": CANARY, "label": "unsafe", "categories": ["violence_hate"]}] if canary else []),
    ]
    out = []
    for row in rows:
        marks = " ".join([f"lbl_{row['label']}", *(f"cat_{c}" for c in row["categories"])])
        label = ROTATE[row["label"]] if rotate else row["label"]
        categories = [] if label == "safe" else list(row["categories"])
        if label == "unsafe" and not categories:
            categories = ["criminal_planning"]  # an unsafe row needs a category (schema rule)
        out.append({"id": row["id"], "text": f"{row['text']} {marks}", "label": label, "categories": categories})
    return out


def write_feedback(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def params_dict(**reevaluate: Any) -> dict[str, Any]:
    return {
        "seed": 13,
        "prepare": {"sources": [{"name": "tiny", "kind": "emosafe", "path": "data/tiny.jsonl"}]},
        "evaluate": {"bootstrap_resamples": 200},
        "register": {"store": "store"},
        "reevaluate": {"tasks": ["trinary"], **reevaluate},
    }
