"""Prompt templates, few-shot sampling, and prefix-cached likelihood scoring (tiny LLaMA, byte tokenizer)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from components.errors import EmosafeError
from components.evaluation.likelihood import score_options
from components.evaluation.prompting import LikelihoodPredictor, draw_examples, parse_template, render
from components.schema import CATEGORIES, LABELS
from tests.fixtures.common import REPO
from tests.fixtures.tiny_lm import byte_tokenizer, tiny_frame, tiny_llama

PROMPTS = REPO / "prompts" / "evaluate"


@pytest.fixture(scope="module")
def lm() -> tuple[Any, Any]:
    import torch

    torch.set_num_threads(1)  # tiny matrices: threads only add contention on a shared 2-core machine
    tokenizer = byte_tokenizer()
    return tiny_llama(len(tokenizer)), tokenizer


def _template(task: str) -> Any:
    path = PROMPTS / f"{task}.v1.txt"
    return parse_template(path.read_text(encoding="utf-8"), task, path.name)


def _reference(model: Any, prefix: list[int], bodies: list[list[int]], options: list[list[int]]) -> np.ndarray:
    """Plain full forward pass per (body, option): the definition the fast path must reproduce."""
    import torch

    out = np.zeros((len(bodies), len(options)))
    with torch.inference_mode():
        for i, body in enumerate(bodies):
            for j, option in enumerate(options):
                logits = model(input_ids=torch.tensor([prefix + body + option])).logits[0]
                logp = torch.log_softmax(logits.float(), dim=-1)
                start = len(prefix) + len(body) - 1
                out[i, j] = sum(float(logp[start + t, token]) for t, token in enumerate(option))
    return out


@pytest.mark.parametrize("task", ["trinary", "taxonomy"])
def test_shipped_templates_parse_and_carry_definitions(task: str) -> None:
    template = _template(task)
    names = LABELS if task == "trinary" else CATEGORIES
    assert all(f"{name}:" in template.prefix for name in names)
    assert len(template.sha256) == 64


def test_bad_template_names_file_and_rule() -> None:
    with pytest.raises(EmosafeError, match=r"bad\.txt: section\(s\) \['query'\]"):
        parse_template("### prefix\nx\n### example\n{text} {answer}\n", "trinary", "bad.txt")
    with pytest.raises(EmosafeError, match=r"lacks \['\{category\}'\]"):
        parse_template("### prefix\nx\n### example\n{text} {answers}\n### query\n{text}\n", "taxonomy", "t.txt")


def test_examples_are_seeded_balanced_and_from_train() -> None:
    frame = tiny_frame()
    first, again = draw_examples(frame, 5, seed=3), draw_examples(frame, 5, seed=3)
    assert first == again and len(first) == 5
    train_ids = set(frame.loc[frame["split"] == "train", "id"])
    assert {e.id for e in first} <= train_ids
    counts = sorted([e.label for e in first].count(label) for label in LABELS)
    assert counts == [1, 2, 2]
    assert draw_examples(frame, 0, seed=3) == ()
    with pytest.raises(EmosafeError, match="train row"):
        draw_examples(frame, 60, seed=3)


def test_render_puts_examples_in_the_shared_prefix() -> None:
    frame = tiny_frame()
    examples = draw_examples(frame, 3, seed=1)
    prompt = render(_template("taxonomy"), examples)
    assert prompt.prefix.count("Message: ") == 3 and prompt.prefix.endswith("\n\n")
    assert len(prompt.queries) == len(CATEGORIES) and prompt.answers == ("yes", "no")
    assert prompt.example_ids == tuple(e.id for e in examples)


@pytest.mark.parametrize("single_token", [True, False])
def test_prefix_cache_matches_full_forward(lm: tuple[Any, Any], single_token: bool) -> None:
    model, tokenizer = lm
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prefix = encode(render(_template("trinary"), draw_examples(tiny_frame(), 2, seed=0)).prefix)
    bodies = [encode(f"Message: {t}\nLabel:") for t in ("hi", "a much longer message here", "ok then")]
    options = [[5], [77], [200]] if single_token else [encode(" " + label) for label in LABELS]
    expected = _reference(model, prefix, bodies, options)
    cached = score_options(model, prefix, bodies, options, batch_size=2)
    naive = score_options(model, prefix, bodies, options, batch_size=4, use_prefix_cache=False)
    assert np.abs(cached - expected).max() < 1e-4
    assert np.abs(naive - expected).max() < 1e-4


@pytest.mark.parametrize("task", ["trinary", "taxonomy"])
def test_predictor_returns_probabilities_and_cache_does_not_change_them(lm: tuple[Any, Any], task: str) -> None:
    model, tokenizer = lm
    prompt = render(_template(task), draw_examples(tiny_frame(), 2 if task == "trinary" else 0, seed=0))
    texts = ["how do I kill a stuck process", "I feel alone", "x"]
    fast = LikelihoodPredictor(model, tokenizer, prompt, batch_size=4).predict(texts)
    slow = LikelihoodPredictor(model, tokenizer, prompt, batch_size=4, use_prefix_cache=False).predict(texts)
    width = 3 if task == "trinary" else 6
    assert fast.shape == (3, width) and ((fast >= 0) & (fast <= 1)).all()
    assert np.abs(fast - slow).max() < 1e-4
    if task == "trinary":
        assert np.allclose(fast.sum(axis=1), 1.0)


def test_long_messages_are_clipped(lm: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import components.evaluation.prompting as prompting

    seen: list[list[int]] = []

    def spy(model: Any, prefix: Any, bodies: Any, *args: Any) -> np.ndarray:
        seen.extend(bodies)
        return score_options(model, prefix, bodies, *args)

    monkeypatch.setattr(prompting, "score_options", spy)
    model, tokenizer = lm
    predictor = LikelihoodPredictor(model, tokenizer, render(_template("trinary"), ()), max_message_tokens=8)
    predictor.predict(["abcdefg", "abcdefg" + "z" * 500])
    assert seen[0] == seen[1]  # " abcdefg" is 8 byte tokens: the long one is cut right after it
    assert predictor.describe()["example_ids"] == []


def test_prompt_files_are_versioned() -> None:
    assert sorted(p.name for p in PROMPTS.glob("*.txt")) == ["taxonomy.v1.txt", "trinary.v1.txt"]
