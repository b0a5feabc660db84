"""Export: parity, int8 agreement, a torch-free fresh process, the int8 gate, unsafe ONNX files, predict + log.

One tiny LLaMA (2 layers, hidden 32, LoRA merged) is exported once per module (~15-25 s on 2 busy cores); every
other test reuses that bundle or builds ONNX graphs of a few bytes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.config import parse_params
from components.errors import EmosafeError
from components.export.bundle import MANIFEST, BundleError, build_manifest, label_map, verify_bundle
from tests.fixtures import export_runs as fx
from tests.fixtures.common import REPO
from tests.fixtures.registry_runs import BOUND


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    tokenizer = fx.save_tokenizer(root / "tokenizer")
    fx.tiny_run(root, tokenizer, decisive=True)
    fx.tiny_dataset(root / "data" / "dataset.parquet")
    return root


@pytest.fixture(scope="module")
def exported(project: Path) -> Any:
    from components.stages.export import export

    # The tiny LLaMA is fitted to its messages (`decisive`: margins of ~7 logits against int8 moves of ~1), so
    # agreement measures the recipe, not the luck of a random model's margins. The shipped recipe (the code default,
    # per_token_split) runs here; the others are exercised in tests/integration/test_export_quant.py.
    params = parse_params(fx.params_dict())
    return export(params, Path("models/tiny-trinary"), root=project)


def test_export_writes_a_hf_style_bundle_with_parity(exported: Any) -> None:
    folder = exported.folder
    for name in (
        "model_int8.onnx",
        "model_fp32.onnx",
        "config.json",
        "tokenizer.json",
        "labels.json",
        "parity.json",
        "quantization.json",
        "meta.json",
        MANIFEST,
    ):
        assert (folder / name).is_file(), name
    parity = json.loads((folder / "parity.json").read_text())
    assert parity["passed"] and parity["label_agreement"] == 1.0 and parity["n"] == 12
    assert 0 < parity["max_abs_diff"] <= parity["atol"] == 1e-4
    assert set(verify_bundle(folder)["files"]) >= {"model_int8.onnx", "meta.json"}
    assert exported.sizes["int8"] < exported.sizes["fp32"] / 2  # embeddings (Gather) quantized too
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["data_hash"] and meta["code"]["code_hash"] and meta["libraries"]["onnxruntime"]
    assert fx.CANARY not in "".join(p.read_text(errors="ignore") for p in folder.glob("*.json"))


def test_every_bundle_file_is_readable_by_a_server_of_another_user(exported: Any) -> None:
    assert exported.folder.stat().st_mode & 0o777 == 0o755
    modes = {path.name: path.stat().st_mode & 0o777 for path in exported.folder.iterdir()}
    assert set(modes.values()) == {0o644}, modes  # the atomic writes and onnx's .data writer create 0600 files


def test_int8_agrees_with_fp32_and_feeds_the_gate(exported: Any) -> None:
    from components.config.register import GateConfig
    from components.release.evidence import bind, measured_files
    from components.release.promotion import Evidence, decide_promotion
    from components.release.scorecard import scorecard_from_dict

    report = json.loads((exported.folder / "quantization.json").read_text())
    assert report["passed"] and report["label_agreement"] >= 0.99
    assert report["quantization"]["settings"]["method"] == "per_token_split"
    assert report["quantization"]["quantized_nodes"].get("MatMulIntegerToFloat", 0) > 0
    card = scorecard_from_dict(report, origin="quantization.json")
    assert card.quantized is not None and card.quantized.label_agreement == report["label_agreement"]
    binding = bind(report, measured_files(exported.folder), {"quantization.json", "manifest.json"})
    assert binding.bound, binding.detail  # the figures name exactly the bundle's files
    decision = decide_promotion(Evidence(1, "m", card.data_hash, card, binding), None, GateConfig(floor_on="point"))
    assert next(c for c in decision.checks if c.name == "quantized").passed


FRESH = r"""
import json, sys
from pathlib import Path
import numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
folder, texts = Path(sys.argv[1]), json.loads(sys.argv[2])
labels = json.loads((folder / "labels.json").read_text())
pad = json.loads((folder / "config.json").read_text())["pad_token_id"]
tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
tok.enable_truncation(labels["max_length"])
seqs = [e.ids for e in tok.encode_batch(texts)]
width = max(map(len, seqs))
ids = np.full((len(seqs), width), pad, dtype=np.int64); mask = np.zeros_like(ids)
for i, s in enumerate(seqs):
    ids[i, :len(s)] = s; mask[i, :len(s)] = 1
out = {}
for variant in ("fp32", "int8"):
    session = ort.InferenceSession(str(folder / f"model_{variant}.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
    out[variant] = [labels["labels"][i] for i in logits.argmax(axis=1)]
plain = "torch" not in sys.modules and "transformers" not in sys.modules
from components.export.runtime import OnnxPredictor
predictor = OnnxPredictor(folder, "int8", batch_size=len(texts))
out["predictor"] = predictor.decide(predictor.predict(texts))
print(json.dumps({"labels": out, "plain": plain, "torch_after_predictor": "torch" in sys.modules}))
"""


def test_fresh_process_with_only_onnxruntime_and_tokenizers_gets_the_same_labels(exported: Any, project: Path) -> None:
    from components.export.merged import load_merged, read_run, torch_logits
    from components.export.runtime import OnnxPredictor

    frame = pd.read_parquet(project / "data" / "dataset.parquet")
    texts = frame[frame["split"] == "test"]["text"].tolist()
    model, tokenizer = load_merged(read_run(project / "models" / "tiny-trinary", project))
    expected = [("safe", "borderline", "unsafe")[i] for i in torch_logits(model, tokenizer, texts, 32).argmax(axis=1)]
    int8 = OnnxPredictor(exported.folder, "int8", batch_size=len(texts))
    result = subprocess.run(
        [sys.executable, "-c", FRESH, str(exported.folder), json.dumps(texts)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["plain"] and not out["torch_after_predictor"]
    assert out["labels"]["fp32"] == expected
    assert out["labels"]["int8"] == int8.decide(int8.predict(texts))
    assert out["labels"]["predictor"] == out["labels"]["int8"]  # the project's predictor, in the same fresh process


def _damage_scales(source: Path, target: Path) -> None:
    """Corrupt every int8 weight scale (what a broken or far too aggressive quantization looks like)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    rng = np.random.default_rng(0)
    for tensor in model.graph.initializer:
        if tensor.name.endswith("_scale") and tensor.data_type == onnx.TensorProto.FLOAT:
            values = numpy_helper.to_array(tensor)
            damaged = values * rng.uniform(-40, 40, size=values.shape).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(damaged.astype(np.float32), tensor.name))
    onnx.save(model, str(target))


def test_damaged_quantization_fails_the_int8_check_and_the_gate(exported: Any, project: Path, tmp_path: Path) -> None:
    from components.config.register import GateConfig
    from components.export.runtime import OnnxPredictor
    from components.release.promotion import Evidence, decide_promotion
    from components.release.scorecard import scorecard_from_dict
    from components.stages.export import _int8_check

    folder = tmp_path / "damaged"
    shutil.copytree(exported.folder, folder)
    _damage_scales(exported.folder / "model_int8.onnx", folder / "model_int8.onnx")
    with pytest.raises(BundleError, match="sha256"):  # the manifest catches the changed file
        OnnxPredictor(folder, "int8")
    params = parse_params(fx.params_dict())
    frame = pd.read_parquet(project / "data" / "dataset.parquet")
    labels = label_map("trinary", 32)
    fp32 = OnnxPredictor(folder, "fp32", verify=False)
    flagged = _int8_check(
        params.export, params.evaluate, folder, frame, labels, fp32
    )  # recorded, not raised: the gate refuses it
    assert flagged["passed"] is False and any("label agreement" in p for p in flagged["comparison"]["problems"])
    from components.evaluation.measure import evaluate
    from components.export.checks import compare_quantized

    test = frame[frame["split"] == "test"].sort_values("id")
    report = compare_quantized(
        evaluate(fp32, test, "trinary"),
        evaluate(OnnxPredictor(folder, "int8", verify=False), test, "trinary"),
        params.export.limits,
    )
    good = json.loads((exported.folder / "quantization.json").read_text())
    card = scorecard_from_dict(good | {"quantized": report.gate_figures()})
    decision = decide_promotion(Evidence(1, "m", card.data_hash, card, BOUND), None, GateConfig(floor_on="point"))
    quantized = next(c for c in decision.checks if c.name == "quantized")
    assert not decision.promote and not quantized.passed and "label agreement" in quantized.detail


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "missing"])
def test_malicious_external_data_is_refused(tmp_path: Path, kind: str) -> None:
    from components.export.runtime import UnsafeModelError, check_external_data

    folder, outside = tmp_path / "bundle", fx.write_weights(tmp_path / "secret.bin")
    location = {"dotdot": "../secret.bin", "absolute": str(outside), "symlink": "weights.bin", "missing": "nope.bin"}
    path = fx.external_onnx(folder, location[kind])
    if kind == "symlink":
        fx.symlink(outside, folder / "weights.bin")
    rule = {"dotdot": "'..'", "absolute": "absolute", "symlink": "symlink", "missing": "does not exist"}[kind]
    with pytest.raises(UnsafeModelError, match=rule):
        check_external_data(path, folder)


@pytest.mark.parametrize(
    ("location", "offset", "length", "rule"),
    [
        ("w.bin\x00.txt", "0", "16", "NUL character"),
        ("w.bin", "17", "0", "spans bytes 17..17 of a 16-byte file"),
        ("w.bin", "8", "16", "spans bytes 8..24"),
        ("w.bin", "0", "99999999999999999999999", "spans bytes 0..99999999999999999999999"),
        ("w.bin", "-1", "16", "offset '-1' is not a byte count"),
        ("w.bin", "0", "\u0663", "length '\u0663' is not a byte count"),
    ],
)
def test_external_data_with_a_nul_or_out_of_range_bytes_is_refused(
    tmp_path: Path, location: str, offset: str, length: str, rule: str
) -> None:
    """Hardening item 12: a NUL in the location raised ValueError deep in pathlib; offsets and lengths were not
    checked against the data file's size."""
    from components.export.runtime import UnsafeModelError, check_external_data

    folder = tmp_path / "bundle"
    fx.write_weights(folder / "w.bin")
    path = fx.external_onnx(folder, location, offset=offset, length=length)
    with pytest.raises(UnsafeModelError, match=rule):
        check_external_data(path, folder)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("config.json", b"{not json", "not a model config"),
        ("config.json", b'{"pad_token_id": "x"}', "not a model config"),
        ("tokenizer.json", b"garbage", "not a readable tokenizers file"),
        ("labels.json", b'{"task": "trinary", "max_length": 16, "labels": 3}', "field 'labels'"),
        ("labels.json", b"[" * 100_000, "labels.json: cannot be read"),
        ("model_int8.onnx", b"\x08\x07garbage that is not a graph", "model_int8.onnx"),
        ("model_int8.onnx", None, "model_int8.onnx"),
    ],
)
def test_damaged_files_behind_a_valid_manifest_are_one_line_errors(
    exported: Any, tmp_path: Path, name: str, content: bytes | None, words: str
) -> None:
    """Hardening item 12: a file replaced (or truncated) and the manifest rebuilt to match gave a JSON, tokenizers,
    protobuf or ONNX Runtime traceback; now a BundleError names the file, and the CLI prints one line."""
    from components.export.runtime import OnnxPredictor

    folder = tmp_path / "copy"
    shutil.copytree(exported.folder, folder)
    whole = (folder / name).read_bytes()
    (folder / name).write_bytes(whole[: len(whole) // 2] if content is None else content)
    (folder / MANIFEST).write_text(json.dumps(build_manifest(folder)))
    with pytest.raises(BundleError, match=words):
        OnnxPredictor(folder)
    (tmp_path / "params.yaml").write_text(json.dumps(fx.params_dict()))
    source = _messages(tmp_path / "m.jsonl", 10)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "emosafe"), "predict", "-m", str(folder), "-i", str(source), "-o", "p.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "p.csv").exists() and fx.CANARY not in done.stderr


def test_safe_external_data_is_accepted_and_runs(tmp_path: Path) -> None:
    import onnxruntime as ort

    from components.export.runtime import check_external_data

    folder = tmp_path / "bundle"
    fx.write_weights(folder / "weights" / "w.bin")
    path = fx.external_onnx(folder, "weights/w.bin")
    assert check_external_data(path, folder) == ["weights/w.bin"]
    out = ort.InferenceSession(str(path)).run(None, {"X": np.zeros(4, dtype=np.float32)})[0]
    assert out.tolist() == [1.0] * 4


def test_manifest_refuses_extra_missing_and_symlinked_files(exported: Any, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(exported.folder, folder)
    (folder / "extra.onnx").write_bytes(b"x")
    with pytest.raises(BundleError, match="unlisted"):
        verify_bundle(folder)
    (folder / "extra.onnx").unlink()
    fx.symlink(folder / "labels.json", folder / "link.json")
    with pytest.raises(BundleError, match="symlink"):
        verify_bundle(folder)
    with pytest.raises(BundleError, match="symlink"):
        build_manifest(folder)


def test_parity_fails_on_tolerance_or_one_flipped_label() -> None:
    from components.export.checks import parity

    logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
    assert parity(logits, logits + 5e-5, "trinary", 1e-4, ["a", "b"]).passed
    assert not parity(logits, logits + 2e-4, "trinary", 1e-4, ["a", "b"]).passed
    flipped = parity(logits, logits[:, [1, 0, 2]], "trinary", 10.0, ["a", "b"])
    assert not flipped.passed and flipped.disagreeing_ids == ("a", "b")
    taxonomy = parity(np.zeros((1, 6)) + 0.01, np.zeros((1, 6)) - 0.01, "taxonomy", 1.0, ["c"])
    assert not taxonomy.passed  # sigmoid crosses the 0.5 threshold: one category set differs


def test_export_config_rules() -> None:
    with pytest.raises(EmosafeError, match="op_types"):
        parse_params(fx.params_dict(quantize={"op_types": []}))


def _messages(path: Path, n: int) -> Path:
    rng = np.random.default_rng(1)
    words = ["calm", "tired", "help", "friends", "walk", "gun", "hurt", "pizza", "exam", "alone", "night"]
    rows = [{"id": f"m{i}", "text": " ".join(rng.choice(words, size=rng.integers(3, 20)))} for i in range(n)]
    rows[7]["text"] = fx.CANARY
    pd.DataFrame(rows).to_json(path, orient="records", lines=True) if path.suffix == ".jsonl" else (
        pd.DataFrame(rows).to_csv(path, index=False) if path.suffix == ".csv" else pd.DataFrame(rows).to_parquet(path)
    )
    return path


def _predict(exported: Any, project: Path, n: int, suffix: str, out: str, log_text: bool = False) -> Any:
    from components.stages.predict import predict

    source = _messages(project / f"messages-{n}{suffix}", n)
    params = parse_params(fx.params_dict())
    return predict(params, str(exported.folder), source, project / out, log_text=log_text, root=project)


def test_predict_500_appends_the_log_contract_without_text(exported: Any, project: Path) -> None:
    from monitoring.log import read_log

    outcome = _predict(exported, project, 500, ".csv", "preds.jsonl")
    lines = (project / "preds.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 500 and set(first) == {"id", "timestamp", "model", "version", "task", "label", "scores"}
    assert first["version"].startswith("local-") and set(first["scores"]) == {"safe", "borderline", "unsafe"}
    log = project / "logs" / "predictions.jsonl"
    before = len(read_log(log))
    _predict(exported, project, 500, ".parquet", "preds.parquet")
    assert len(read_log(log)) == before + 500 and outcome.rows == 500  # appended, and monitoring can read it
    assert fx.CANARY not in log.read_text() and fx.CANARY not in (project / "preds.jsonl").read_text()
    assert len(pd.read_parquet(project / "preds.parquet")) == 500


def test_a_shipped_trinary_operating_point_decides_predict(exported: Any, project: Path, tmp_path: Path) -> None:
    """labels.json with (unsafe, flagged) thresholds: `predict` labels follow the operating-point rule, not argmax,
    and export reads those thresholds from an evaluate report (``export.thresholds_report``)."""
    from components.evaluation.operating_point import decide
    from components.schema import LABELS
    from components.stages.export import _thresholds
    from components.stages.predict import predict

    report = project / "reports" / "evaluate" / "tiny-fine_tuned-trinary.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"thresholds": {"unsafe": {"threshold": 0.2}, "flagged": {"threshold": 0.45}}}))
    template = "reports/evaluate/{model}-fine_tuned-{task}.json"
    point = _thresholds(template, "tiny-trinary", "trinary", project)
    assert point == {"unsafe": 0.2, "flagged": 0.45}
    bundle = tmp_path / "bundle"
    shutil.copytree(exported.folder, bundle)
    labels = json.loads((bundle / "labels.json").read_text())
    (bundle / "labels.json").write_text(json.dumps(labels | {"thresholds": point}))
    (bundle / MANIFEST).write_text(json.dumps(build_manifest(bundle)))
    source = _messages(tmp_path / "messages.jsonl", 200)
    params = parse_params(fx.params_dict())
    predict(params, str(bundle), source, tmp_path / "out.jsonl", root=project)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    scores = np.array([[row["scores"][name] for name in LABELS] for row in rows])
    assert [row["label"] for row in rows] == [LABELS[i] for i in decide(scores, "trinary", point)]
    argmax = [LABELS[i] for i in scores.argmax(axis=1)]
    assert [row["label"] for row in rows] != argmax, "the fixture's scores must make the rule matter"


def test_predict_log_text_only_on_request(exported: Any, project: Path) -> None:
    _predict(exported, project, 20, ".jsonl", "with-text.jsonl", log_text=True)
    assert fx.CANARY in (project / "with-text.jsonl").read_text()


def test_predict_refuses_bad_input_before_writing(exported: Any, project: Path, tmp_path: Path) -> None:
    from components.stages.predict import predict

    bad = tmp_path / "bad.csv"
    bad.write_text("id,message\n1,hello\n")
    params = parse_params(fx.params_dict())
    with pytest.raises(EmosafeError, match="missing column 'text'"):
        predict(params, str(exported.folder), bad, tmp_path / "out.jsonl", root=tmp_path)
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "logs").exists()


def test_predict_10k_messages(exported: Any, project: Path) -> None:
    outcome = _predict(exported, project, 10_000, ".jsonl", "preds-10k.jsonl")
    appended = outcome.log.read_text().splitlines()[-10_000:]  # an earlier test logged text on request
    assert outcome.rows == 10_000 and all(json.loads(line)["id"] == f"m{i}" for i, line in enumerate(appended))
    assert fx.CANARY not in "".join(appended) and fx.CANARY not in (project / "preds-10k.jsonl").read_text()


def test_cli_predict_and_export_errors_are_one_line(exported: Any, project: Path, tmp_path: Path) -> None:
    env_bin = Path(sys.executable).parent / "emosafe"
    (tmp_path / "params.yaml").write_text(json.dumps(fx.params_dict()))
    source = _messages(tmp_path / "m.jsonl", 30)
    ok = subprocess.run(
        [str(env_bin), "predict", "--model", str(exported.folder), "--input", str(source), "--output", "p.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "30 predictions" in ok.stdout and (tmp_path / "logs" / "predictions.jsonl").is_file()
    bad = subprocess.run(
        [str(env_bin), "export", "--run", "models/nothing"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "emosafe: error:" in bad.stderr


@pytest.mark.parametrize("case", ["parent is a file", "output is a folder", "system refuses the folder"])
def test_an_output_that_cannot_be_written_is_one_line(exported: Any, tmp_path: Path, case: str) -> None:
    """Hardening item 12: an unwritable or file-typed output folder gave a traceback."""
    (tmp_path / "params.yaml").write_text(json.dumps(fx.params_dict()))
    source = _messages(tmp_path / "m.jsonl", 10)
    (tmp_path / "taken").write_text("a file")
    (tmp_path / "p.csv").mkdir()
    output, words = {
        "parent is a file": ("taken/p.csv", "taken is not a folder"),
        "output is a folder": ("p.csv", "p.csv: is a folder"),
        "system refuses the folder": ("/proc/emosafe-test/p.csv", "/proc/emosafe-test"),
    }[case]
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "emosafe"),
            "predict",
            "-m",
            str(exported.folder),
            "-i",
            str(source),
            "-o",
            output,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    last = done.stderr.strip().splitlines()[-1]  # after the progress bar when scoring ran before the write failed
    assert done.returncode == 2 and last.startswith("emosafe: error:") and "Traceback" not in done.stderr, done.stderr
    assert words in last and not (tmp_path / "logs").exists()


def test_long_messages_are_scored_by_their_riskiest_window_in_torch_and_onnx(
    exported: Any, project: Path, tmp_path: Path
) -> None:
    """A bundle with ``long_messages: windows`` (max_length cut to 8 tokens so the fixture's messages are long):
    ONNX Runtime and the torch scorer split and aggregate alike; a message that fits keeps its truncated scores,
    and a long one is at least as risky as its first window (what truncation kept)."""
    from components.export.merged import TorchPredictor, load_merged, read_run
    from components.export.runtime import OnnxPredictor
    from components.schema import LABELS

    bundle = tmp_path / "bundle"
    shutil.copytree(exported.folder, bundle)
    labels = json.loads((bundle / "labels.json").read_text())
    (bundle / "labels.json").write_text(json.dumps(labels | {"max_length": 8, "long_messages": "windows"}))
    (bundle / MANIFEST).write_text(json.dumps(build_manifest(bundle)))
    texts = ["calm walk", "tired exam " * 12 + "hurt alone gun night " * 6, "pizza friends " * 20 + "help"]
    onnx = OnnxPredictor(bundle, "fp32").predict(texts)
    model, tokenizer = load_merged(read_run(project / "models" / "tiny-trinary", project))
    windows = TorchPredictor(model, tokenizer, "trinary", 8, long_messages="windows").predict(texts)
    truncated = TorchPredictor(model, tokenizer, "trinary", 8).predict(texts)
    assert np.allclose(onnx, windows, atol=1e-4) and np.allclose(onnx.sum(axis=1), 1.0)
    assert np.allclose(windows[0], truncated[0], atol=1e-6)
    unsafe, safe = LABELS.index("unsafe"), LABELS.index("safe")
    assert (windows[1:, unsafe] >= truncated[1:, unsafe] - 1e-6).all()
    assert (windows[1:, safe] <= truncated[1:, safe] + 1e-6).all()
    assert not np.allclose(windows[1:], truncated[1:], atol=1e-3), "the windows past the first must count"


def test_predict_never_writes_over_its_input_or_the_production_log(exported: Any, project: Path) -> None:
    """`--input x.jsonl --output x.jsonl` once replaced the messages with predictions (issue: hardening, item 2)."""
    from components.stages.predict import predict

    source = _messages(project / "same.jsonl", 20)
    before = source.read_bytes()
    params = parse_params(fx.params_dict())
    for output in (source, project / "." / "same.jsonl", project / "logs" / "predictions.jsonl"):
        with pytest.raises(EmosafeError, match="an output never replaces an input"):
            predict(params, str(exported.folder), source, output, root=project)
    assert source.read_bytes() == before


def test_a_log_path_that_is_a_folder_fails_before_the_output_is_written(exported: Any, project: Path) -> None:
    """predict once wrote its output and then failed on the log with a traceback (hardening, item 4)."""
    from components.stages.predict import predict

    source = _messages(project / "for-log.jsonl", 10)
    (project / "log-is-a-folder").mkdir(exist_ok=True)
    raw = fx.params_dict()
    raw["predict"]["log"] = "log-is-a-folder"
    with pytest.raises(EmosafeError, match="must be a file"):
        predict(parse_params(raw), str(exported.folder), source, project / "never.jsonl", root=project)
    assert not (project / "never.jsonl").exists()
