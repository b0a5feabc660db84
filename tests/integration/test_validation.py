"""The data gate (`validate`): each broken rule fails for its own reason, good data passes, no text leaks.

Fixtures start from the bundled sample, prepared once in a tmp folder (720 rows), and break one rule each.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.config import Params, load_params
from components.config.validate import ValidateConfig
from components.data.expectations import build_frames, build_suites
from components.data.validation import ValidationReport, run_suites
from components.errors import ValidationFailed
from components.provenance import stage_code_deps
from components.schema import CATEGORIES
from components.stages.prepare import prepare
from components.stages.validate import FAILED_REPORT_FILE, REPORT_FILE, validate
from components.text import text_hash
from tests.fixtures.common import REPO, SHARED_DATA, VENV_BIN, needs_shared, repo_ignore

CANARY = "zq-canary-7f3a91-do-not-leak"


@pytest.fixture(scope="module")
def params() -> Params:
    """The shipped params without evaluation suites: these tests run validate in folders that hold no
    data/suites/ (the suite leakage rule has its own test, on the shipped params)."""
    shipped = load_params(REPO / "params.yaml")
    return shipped.model_copy(update={"evaluate": shipped.evaluate.model_copy(update={"suites": {}})})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, params: Params) -> Path:
    """The embedded default (bundled sample) through the real prepare stage."""
    root = tmp_path_factory.mktemp("sample")
    (root / "data" / "sample").mkdir(parents=True)
    shutil.copy(REPO / "data" / "sample" / "messages.jsonl", root / "data" / "sample")
    return prepare(params, root).dataset_path


@pytest.fixture
def sample(prepared: Path) -> pd.DataFrame:
    return pd.read_parquet(prepared)


def check(frame: pd.DataFrame, config: ValidateConfig) -> ValidationReport:
    return run_suites(build_frames(frame, config), build_suites(config))


def first(frame: pd.DataFrame, **where: str) -> int:
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        mask &= frame[column] == value
    return int(frame.index[mask][0])


def augmented_copy(frame: pd.DataFrame, row: int, **changes: object) -> pd.DataFrame:
    """``frame`` plus a rewrite of ``row`` (new id and text hash), with ``changes`` applied."""
    rewrite = frame.loc[[row]].copy()
    rewrite["id"] = "aug:" + rewrite["id"]
    rewrite["origin"] = "augmented"
    rewrite["parent_id"] = frame.loc[row, "id"]
    rewrite["text_hash"] = text_hash(f"rewrite of {frame.loc[row, 'id']}")
    for column, value in changes.items():
        rewrite[column] = value
    return pd.concat([frame, rewrite], ignore_index=True)


def test_the_bundled_sample_passes_every_expectation(sample: pd.DataFrame, params: Params) -> None:
    report = check(sample, params.validate)
    assert report.success, [outcome.to_dict() for outcome in report.failures]
    rules = {outcome.rule for outcome in report.outcomes}
    assert {"id_unique", "text_length", "taxonomy_consistency", "no_split_leakage", "augmented_train_only"} <= rules
    assert {"label_coverage", "category_coverage", "source_min_rows", "source_max_rows", "source_declared"} <= rules


def _dup_id(f: pd.DataFrame) -> None:
    f.loc[1, "id"] = f.loc[0, "id"]


def _set(column: str, value: object, **where: str) -> Callable[[pd.DataFrame], None]:
    def apply(f: pd.DataFrame) -> None:
        f.loc[first(f, **where) if where else 0, column] = value

    return apply


def _leak(f: pd.DataFrame) -> None:
    f.loc[first(f, split="test"), "text_hash"] = f.loc[first(f, split="train"), "text_hash"]


def _move(split: str, to: str, **where: object) -> Callable[[pd.DataFrame], None]:
    def apply(f: pd.DataFrame) -> None:
        mask = f["split"] == split
        for column, value in where.items():
            mask &= f[column] == value
        f.loc[mask, "split"] = to

    return apply


def _unsafe_without_category(f: pd.DataFrame) -> None:
    f.loc[first(f, label="unsafe"), list(CATEGORIES)] = False


def _category_as_word(f: pd.DataFrame) -> None:
    f["violence_hate"] = f["violence_hate"].astype(object)
    f.loc[first(f, label="safe"), "violence_hate"] = "no"


def _parent_id_int(f: pd.DataFrame) -> None:
    f["parent_id"] = f["parent_id"].astype(object)
    f.loc[0, "parent_id"] = 17


BROKEN: dict[str, tuple[Callable[[pd.DataFrame], None], set[str]]] = {
    "duplicate id": (_dup_id, {"id_unique"}),
    "empty text": (_set("text", ""), {"text_length", "text_not_blank"}),
    "blank text": (_set("text", "   "), {"text_not_blank"}),
    "over-long text": (_set("text", "word " * 1000), {"text_length"}),
    "unknown label": (_set("label", "maybe", label="safe"), {"label_values", "taxonomy_consistency"}),
    "unknown split": (_set("split", "holdout"), {"split_values"}),
    "safe row with a category": (_set("suicide_self_harm", True, label="safe"), {"taxonomy_consistency"}),
    "unsafe row without category": (_unsafe_without_category, {"taxonomy_consistency"}),
    "text hash in train and test": (_leak, {"no_split_leakage"}),
    "a label missing from test": (_move("test", "val", label="safe"), {"label_coverage"}),
    "a category missing from test": (_move("test", "val", sexual_content=True), {"category_coverage"}),
    "mistyped parent_id": (_parent_id_int, {"column_types"}),
    "a category that is not boolean": (_category_as_word, {"category_types"}),
    "a missing source": (_set("source", None), {"no_missing_values"}),
    "bad text hash": (_set("text_hash", "not-a-hash"), {"text_hash_format"}),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_rule_fails_for_its_own_reason(case: str, sample: pd.DataFrame, params: Params) -> None:
    breaker, expected = BROKEN[case]
    breaker(sample)
    report = check(sample, params.validate)
    assert not report.success
    assert report.failed_rules() == expected
    assert all(outcome.unexpected_count for outcome in report.failures), "each failure counts its rows"
    assert all(outcome.example_ids for outcome in report.failures), "each failure names example ids"


def test_failures_name_the_offending_ids(sample: pd.DataFrame, params: Params) -> None:
    train, test = first(sample, split="train"), first(sample, split="test")
    sample.loc[test, "text_hash"] = sample.loc[train, "text_hash"]
    _dup_id(sample)
    report = check(sample, params.validate)
    by_rule = {outcome.rule: outcome for outcome in report.failures}
    assert set(by_rule["no_split_leakage"].example_ids) == {sample.loc[train, "id"], sample.loc[test, "id"]}
    assert by_rule["id_unique"].example_ids == (sample.loc[0, "id"],) * 2


def test_no_suite_message_or_near_copy_reaches_the_dataset(sample: pd.DataFrame) -> None:
    """The shipped evaluation suites are disjoint from the embedded dataset; a planted copy (in any split, reworded
    by one word) fails the gate naming the row."""
    from components.stages.validate import suite_texts

    params = load_params(REPO / "params.yaml")
    suites = suite_texts(params.evaluate.suites, REPO)
    assert len(suites) >= 200  # the two shipped suites (data/suites/)
    clean = run_suites(build_frames(sample, params.validate, suites), build_suites(params.validate, True))
    assert clean.success, clean.failed_rules()
    row = first(sample, split="train")
    leaked = augmented_copy(sample, row, text=suites[7] + " honestly")
    report = run_suites(build_frames(leaked, params.validate, suites), build_suites(params.validate, True))
    assert report.failed_rules() == {"no_suite_leakage"}
    assert report.failures[0].example_ids == ("aug:" + sample.loc[row, "id"],)


def test_augmented_rows_only_in_train_and_with_a_parent(sample: pd.DataFrame, params: Params) -> None:
    row = first(sample, split="train")
    assert check(augmented_copy(sample, row), params.validate).success
    in_test = check(augmented_copy(sample, row, split="test"), params.validate)
    assert in_test.failed_rules() == {"augmented_train_only"}
    assert in_test.failures[0].example_ids == ("aug:" + sample.loc[row, "id"],)
    orphan = check(augmented_copy(sample, row, parent_id=None), params.validate)
    assert orphan.failed_rules() == {"augmented_has_parent"}


def test_the_augment_stages_output_schema_passes(sample: pd.DataFrame, params: Params) -> None:
    """Contract with `augment`: its combined frame (extra nullable aug_* columns, string dtypes) passes the gate."""
    from components.data import augment

    parents = sample[sample["split"] == "train"].head(4)
    rewrites = pd.concat([augmented_copy(parents, row).tail(1) for row in parents.index], ignore_index=True)
    rewrites = rewrites.assign(aug_generator="local", aug_model="tiny", aug_prompt_version="v1", aug_seed=13)
    combined = augment.combine(sample, rewrites.assign(aug_label_policy="inherit"))
    assert (combined["origin"] == "augmented").sum() == 4
    assert check(combined, params.validate).success
    combined.loc[combined["origin"] == "augmented", "split"] = "val"
    assert check(combined, params.validate).failed_rules() == {"augmented_train_only"}


def test_augmented_rows_do_not_count_towards_coverage(sample: pd.DataFrame, params: Params) -> None:
    """A split cannot reach a category's floor through rewrites: the floors are about human data."""
    _move("test", "val", sexual_content=True)(sample)
    rewrites = sample[sample["sexual_content"] & (sample["split"] == "train")].head(6)
    for row in rewrites.index:
        sample = augmented_copy(sample, row)
    assert check(sample, params.validate).failed_rules() == {"category_coverage"}


def test_a_declared_exemption_lets_a_thin_category_pass(sample: pd.DataFrame, params: Params) -> None:
    _move("test", "val", sexual_content=True)(sample)
    failing = check(sample, params.validate)
    assert [outcome.example_ids for outcome in failing.failures] == [("test/category/sexual_content",)]
    thin = {"sexual_content": {"min_count": 0, "reason": "too few public examples"}}
    exempt = ValidateConfig.model_validate({**params.validate.model_dump(), "category_exemptions": thin})
    assert check(sample, exempt).success


def test_source_row_bounds(sample: pd.DataFrame, params: Params) -> None:
    few = check(sample[(sample["split"] != "train") | (sample.index % 3 != 0)], params.validate)  # 720 -> ~550
    assert few.failed_rules() == {"source_min_rows"} and few.failures[0].example_ids == ("sample",)
    tight = ValidateConfig.model_validate({**params.validate.model_dump(), "source_row_bounds": {"sample": [1, 10]}})
    assert check(sample, tight).failed_rules() == {"source_max_rows"}
    sample.loc[0, "source"] = "stray"
    assert check(sample, params.validate).failed_rules() == {"source_declared"}


def test_a_missing_column_is_named(sample: pd.DataFrame, params: Params) -> None:
    report = check(sample.drop(columns=["origin"]), params.validate)
    missing = [o for o in report.failures if o.rule == "required_columns"]
    assert [o.column for o in missing] == ["origin"]
    involving_origin = {
        "column_types",
        "no_missing_values",
        "origin_values",
        "augmented_train_only",
        "augmented_has_parent",
    }
    assert {o.rule for o in report.failures if o.suite == "rows"} == {"required_columns", *involving_origin}
    assert {o.suite for o in report.failures} == {"rows", "coverage", "sources"}  # no human rows can be counted


@pytest.mark.parametrize(
    "update, message",
    [
        ({"min_text_chars": 10, "max_text_chars": 5}, "min_text_chars must not exceed max_text_chars"),
        ({"category_exemptions": {"sexual_content": {"min_count": 5, "reason": "x"}}}, "must be below"),
        ({"source_row_bounds": {"sample": [10, 5]}}, "0 <= min <= max"),
        ({"category_exemptions": {"sexual_content": {"min_count": 1, "reason": ""}}}, "at least 1 character"),
    ],
)
def test_config_rules(update: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ValidateConfig.model_validate(update)


def test_suites_are_plain_data() -> None:
    """Suites are built without GX: names are real GX classes, checked here so a typo fails fast."""
    import great_expectations.expectations as gxe

    for suite in build_suites(ValidateConfig(source_row_bounds={"a": (0, 1)})):
        for spec in suite.expectations:
            assert hasattr(gxe, spec.expectation), spec.expectation


# --- the stage, the CLI, DVC -------------------------------------------------------------------------------------


def test_stage_writes_report_and_data_docs(tmp_path: Path, prepared: Path, params: Params) -> None:
    result = validate(params, tmp_path, data=prepared)
    out = tmp_path / "data" / "validated"
    assert result.report_path == out / REPORT_FILE and result.report["success"] is True
    provenance = result.report["provenance"]
    assert provenance["params"]["validate"]["min_per_label_per_split"] == 20
    assert len(provenance["data_hash"]) == 64 and provenance["great_expectations"].startswith("1.")
    assert result.docs_index == (out / "data_docs" / "index.html").resolve() and result.docs_index.is_file()
    assert list((out / "data_docs" / "validations").rglob("*.html"))
    assert not (out / FAILED_REPORT_FILE).exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "no staging folders left behind"


def test_a_failed_run_removes_the_stale_report_and_writes_nothing_for_downstream(
    tmp_path: Path, sample: pd.DataFrame, params: Params
) -> None:
    good, bad = tmp_path / "good.parquet", tmp_path / "bad.parquet"
    sample.to_parquet(good)
    validate(params, tmp_path, data=good)
    _dup_id(sample)
    sample.to_parquet(bad)
    with pytest.raises(ValidationFailed) as caught:
        validate(params, tmp_path, data=bad)
    out = tmp_path / "data" / "validated"
    assert not (out / REPORT_FILE).exists() and (out / FAILED_REPORT_FILE).is_file()
    assert caught.value.failed_rules == ["id_unique"]
    summary = str(caught.value)
    assert "id_unique" in summary and sample.loc[0, "id"] in summary and "data_docs/index.html" in summary
    assert len(summary.splitlines()) <= 20


def test_no_raw_text_in_any_file_log_or_message(
    tmp_path: Path, sample: pd.DataFrame, params: Params, caplog: pytest.LogCaptureFixture
) -> None:
    """The canary sits in rows that break text rules, id uniqueness and leakage; it must surface nowhere."""
    sample["text"] = sample["text"].astype(object)
    sample.loc[0, "text"] = f"{CANARY} " * 900  # over-long
    sample.loc[1, "text"] = f"   {CANARY}"
    sample.loc[2, "id"] = sample.loc[3, "id"]
    sample.loc[2, "text"] = CANARY
    _leak(sample)
    sample.loc[first(sample, split="test"), "text"] = CANARY
    sample.loc[4, "text"] = ""  # empty: not-blank check runs on the others
    data = tmp_path / "canary.parquet"
    sample.to_parquet(data)
    with caplog.at_level("DEBUG"), pytest.raises(ValidationFailed) as caught:
        validate(params, tmp_path, data=data)
    assert {"text_length", "id_unique", "no_split_leakage"} <= set(caught.value.failed_rules)
    written = [p for p in (tmp_path / "data" / "validated").rglob("*") if p.is_file()]
    scanned = [p for p in written if p.suffix in {".json", ".html"}]
    assert {"failed-report.json", "gx_results.json", "index.html"} <= {p.name for p in scanned}
    assert any(sample.loc[3, "id"] in p.read_text() for p in scanned), "the scan reads the files with the ids"
    leaking = [str(p) for p in written if CANARY.encode() in p.read_bytes()]
    assert leaking == []
    assert CANARY not in str(caught.value) and CANARY not in caplog.text


def test_gx_writes_nothing_outside_the_output_folder(tmp_path: Path, prepared: Path, params: Params) -> None:
    """An in-memory context: no gx/ project folder in the repo, the working folder or the home folder."""
    gx_names = {"gx", "great_expectations", ".great_expectations", "great_expectations.yml", "uncommitted"}
    places = [REPO, Path.cwd(), Path.home()]
    before = {place: {p.name for p in place.iterdir()} & gx_names for place in places}
    validate(params, tmp_path, data=prepared)
    assert {p.name for p in tmp_path.iterdir()} == {"data"}
    assert {p.name for p in (tmp_path / "data").iterdir()} == {"validated"}
    assert {place: {p.name for p in place.iterdir()} & gx_names for place in places} == before


def test_cli_passes_on_the_sample_and_prints_the_data_docs_path(tmp_path: Path, prepared: Path) -> None:
    from typer.testing import CliRunner

    from components.cli import app

    params_file = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params_file)
    raw = yaml.safe_load(params_file.read_text())
    raw["validate"]["output_dir"] = str(tmp_path / "validated")
    params_file.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["validate", "--params", str(params_file), "--data", str(prepared)])
    assert result.exit_code == 0, result.output
    assert "validation passed" in result.output
    assert f"Data Docs: {(tmp_path / 'validated' / 'data_docs' / 'index.html').as_uri()}" in result.output


def test_cli_fails_with_the_rule_named_and_exit_code_2(tmp_path: Path, sample: pd.DataFrame) -> None:
    _set("suicide_self_harm", True, label="safe")(sample)
    sample.to_parquet(tmp_path / "bad.parquet")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["evaluate"]["suites"] = {}  # this folder holds no data/suites/ (checked in its own test)
    raw["register"]["gate"]["suites"] = {}  # nor gate floors on them
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [str(VENV_BIN / "emosafe"), "validate", "--data", "bad.parquet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "taxonomy_consistency" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "validated" / REPORT_FILE).exists()


def test_dvc_stage_lists_its_modules_input_and_params(params: Params) -> None:
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["validate"]
    suites = {"data/suites/benign_lookalikes.jsonl", "data/suites/crisis.jsonl"}  # no row may repeat theirs
    assert set(stage["deps"]) == set(stage_code_deps("validate")) | {params.validate.input} | suites
    assert stage["params"] == ["validate", "evaluate.suites"]
    assert stage["cmd"] == "emosafe validate --params params.yaml"
    assert [next(iter(out)) for out in stage["outs"]] == [f"{params.validate.output_dir}/{REPORT_FILE}"]


_SKIP = repo_ignore("models", "reports", "outputs")


def _skip(directory: str, names: list[str]) -> set[str]:
    """What the project copy leaves out: caches, run outputs, and every data folder but the sample and the suites."""
    skipped = set(_SKIP(directory, names))
    if Path(directory).resolve() == REPO / "data":
        skipped |= {name for name in names if name not in ("sample", "suites")}
    return skipped


def test_dvc_repro_stops_at_validate_on_a_broken_input(tmp_path: Path) -> None:
    """A truncated corpus passes `prepare` but breaks the source bounds: the downstream stage must not run.

    In this copy validate reads the prepared dataset directly and a stand-in stage consumes report.json (so the
    test depends neither on the augment stage nor on training). `dvc repro downstream` reaches validate only
    through that dependency, so seeing validate fail proves the gate sits between the two.
    """
    root = tmp_path / "emosafe"
    shutil.copytree(REPO, root, ignore=_skip)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    stage = pipeline["stages"]["validate"]
    stage["deps"] = ["data/prepared/dataset.parquet" if d.startswith("data/augmented") else d for d in stage["deps"]]
    pipeline["stages"]["downstream"] = {
        "cmd": "cp data/validated/report.json data/downstream.json",
        "deps": ["data/validated/report.json"],
        "outs": ["data/downstream.json"],
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["validate"]["input"] = "data/prepared/dataset.parquet"
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    corpus = root / "data" / "sample" / "messages.jsonl"
    corpus.write_text("".join(corpus.read_text().splitlines(keepends=True)[:500]))  # truncated: 500 of 720
    dvc = str(VENV_BIN / "dvc")
    broken = subprocess.run([dvc, "repro", "downstream"], cwd=root, capture_output=True, text=True, timeout=300)
    output = broken.stdout + broken.stderr
    assert broken.returncode != 0
    assert "source_min_rows" in output and "failed to reproduce 'validate'" in output, output
    assert (root / "data" / "prepared" / "dataset.parquet").is_file(), "prepare ran: the input was readable"
    assert not (root / "data" / "validated" / REPORT_FILE).exists()
    assert not (root / "data" / "downstream.json").exists()


@needs_shared
def test_the_real_corpora_pass(tmp_path: Path) -> None:
    root = tmp_path / "emosafe"
    (root / "data" / "sample").mkdir(parents=True)
    shutil.copy(REPO / "data" / "sample" / "messages.jsonl", root / "data" / "sample")
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    params = load_params(REPO / "configs" / "real" / "params.yaml")
    dataset = prepare(params, root).dataset_path
    from components.stages.validate import suite_texts

    frames = build_frames(pd.read_parquet(dataset), params.validate, suite_texts(params.evaluate.suites, REPO))
    report = run_suites(frames, build_suites(params.validate, True))  # the suites are apart from the real corpora too
    assert report.success, [outcome.to_dict() for outcome in report.failures]
