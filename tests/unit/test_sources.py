"""Source adapters on small fixtures shaped like the real corpora (written here, not copied)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from components.config import CounselChatSource, DiaSafetySource, TableSource
from components.data.sources import read_counsel_chat, read_diasafety, read_source, read_table
from components.errors import DataRowError

MAP = {
    "chat": {"label": "safe"},
    "sh": {"label": "borderline", "categories": ["suicide_self_harm"]},
    "mix": {"label": "borderline", "keywords": True},
}
KEYWORDS = {"suicide_self_harm": ["suicid", "end my life"], "regulated_substances": ["drunk", "weed"]}


def table_config(path: str, **extra: object) -> TableSource:
    return TableSource.model_validate(
        {
            "name": "forum",
            "kind": "table",
            "path": path,
            "text_columns": ["title", "body"],
            "label_column": "tag",
            "label_map": MAP,
            "keywords": KEYWORDS,
            **extra,
        }
    )


ROWS = [
    {"pid": "a", "title": "Hi", "body": "  how are   you ", "tag": "chat"},
    {"pid": "b", "title": "Rough week", "body": "I got drunk again and feel suicidal", "tag": "mix"},
    {"pid": "c", "title": "Presuicidal? no", "body": "just sad", "tag": "mix"},
    {"pid": "d", "title": "Why", "body": None, "tag": "sh"},
]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "parquet"])
def test_generic_table_adapter_reads_every_format(tmp_path: Path, fmt: str) -> None:
    frame = pd.DataFrame(ROWS)
    path = tmp_path / f"forum.{fmt}"
    if fmt == "csv":
        frame.fillna("").to_csv(path, index=False)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    elif fmt == "json":
        path.write_text(json.dumps(ROWS))
    else:
        frame.to_parquet(path)
    records = read_table(path, table_config(str(path), id_column="pid"))
    assert [r.id for r in records] == ["forum:a", "forum:b", "forum:c", "forum:d"]
    assert records[0].text == "Hi\nhow are you"  # columns joined, whitespace collapsed
    assert records[0].label == "safe" and records[0].categories == frozenset()
    assert records[1].categories == {"suicide_self_harm", "regulated_substances"}  # keyword rules
    assert records[2].categories == frozenset()  # word-prefix match: "Presuicidal" is not "suicid..."
    assert records[3].text == "Why" and records[3].categories == {"suicide_self_harm"}


def test_jsonl_keeps_a_message_with_unicode_line_separators_whole(tmp_path: Path) -> None:
    """U+2028/U+2029 are valid inside a JSON string; `str.splitlines` once cut such a line in two (hardening, 13)."""
    rows = [{"pid": "a", "title": "first\u2028second", "body": "x\u2029y\x85z", "tag": "chat"}, ROWS[1]]
    path = tmp_path / "forum.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\r\n" for row in rows), encoding="utf-8")
    records = read_table(path, table_config(str(path), id_column="pid"))
    assert [r.id for r in records] == ["forum:a", "forum:b"]
    assert "first" in records[0].text and "second" in records[0].text and "z" in records[0].text


def test_table_adapter_default_mapping_and_dedupe(tmp_path: Path) -> None:
    path = tmp_path / "forum.csv"
    pd.DataFrame([*ROWS, {**ROWS[0], "tag": "unknown-topic"}]).fillna("").to_csv(path, index=False)
    config = table_config(str(path), default={"label": "borderline"}, dedupe_column="pid", id_column="pid")
    records = read_table(path, config)
    assert len(records) == 4  # the repeated pid "a" is dropped before mapping


TWEETS = [
    {"n": 0, "tweet": "RT @someone: look at this &amp; that", "class": 2},
    {"n": 1, "tweet": "@a @b", "class": 2},
    *({"n": i, "tweet": f"message {i} from @user{i}", "class": 1} for i in range(2, 40)),
    {"n": 40, "tweet": "a plain one", "class": 0},
]
CLEANUP = {"html_unescape": True, "replace": [{"pattern": r"^RT\s+@\w+:?\s*"}, {"pattern": r"@\w+", "repl": "@user"}]}


def tweet_config(path: Path, **extra: object) -> TableSource:
    label_map = {
        "0": {"label": "unsafe", "categories": ["violence_hate"]},
        "1": {"label": "safe"},
        "2": {"label": "safe"},
    }
    raw = {"name": "tweets", "kind": "table", "path": str(path), "text_columns": ["tweet"], "label_column": "class"}
    return TableSource.model_validate(raw | {"label_map": label_map, "id_column": "n"} | extra, context={"seed": 5})


def test_table_text_cleanup_and_per_label_quota(tmp_path: Path) -> None:
    """Declared cleanup (entities, retweet markers, handles) and a seeded per-label quota, independent of row order."""
    path = tmp_path / "tweets.csv"
    pd.DataFrame(TWEETS[:1] + TWEETS[2:]).to_csv(path, index=False)
    records = read_table(path, tweet_config(path, text_cleanup=CLEANUP, max_rows_per_label={"1": 10}))
    assert records[0].text == "look at this & that" and records[1].text.endswith("from @user")
    assert [r.label for r in records].count("safe") == 11 and len(records) == 12  # 10 of 38, plus the two others
    kept = {r.id for r in records}
    shuffled = tmp_path / "shuffled.csv"
    pd.DataFrame(TWEETS[:1] + TWEETS[2:]).sample(frac=1.0, random_state=3).to_csv(shuffled, index=False)
    assert {r.id for r in read_table(shuffled, tweet_config(shuffled, max_rows_per_label={"1": 10}))} == kept
    other_seed = tweet_config(path, max_rows_per_label={"1": 10}, seed=6)
    assert {r.id for r in read_table(path, other_seed)} != kept
    pd.DataFrame(TWEETS).to_csv(path, index=False)
    with pytest.raises(DataRowError, match=r"row 2.*empty after the source's text_cleanup"):
        read_table(path, tweet_config(path, text_cleanup={"replace": [{"pattern": r"@\w+"}]}))
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        tweet_config(path, text_cleanup={"replace": [{"pattern": "(unclosed"}]})
    with pytest.raises(ValidationError, match="max_rows_per_label names raw label"):
        tweet_config(path, max_rows_per_label={"7": 3})


def test_diasafety_adapter_maps_category_of_user_context(tmp_path: Path) -> None:
    rows = [
        {
            "context": "I want to end my life",
            "response": "ok",
            "category": "Risk Ignorance",
            "label": "Unsafe",
        },
        {
            "context": "is this rash serious",
            "response": "see a doctor",
            "category": "Unauthorized Expertise",
            "label": "Safe",
        },
        {
            "context": "those people are vermin",
            "response": "agreed",
            "category": "Toxicity Agreement",
            "label": "Unsafe",
        },
    ]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(rows))
    config = DiaSafetySource.model_validate(
        {
            "name": "diasafety",
            "kind": "diasafety",
            "paths": [str(path)],
            "keywords": KEYWORDS,
            "category_map": {
                "Risk Ignorance": {"label": "borderline", "keywords": True},
                "Unauthorized Expertise": {"label": "safe"},
                "Toxicity Agreement": {"label": "unsafe", "categories": ["violence_hate"]},
            },
        }
    )
    records = read_diasafety(path, config)
    assert [r.id for r in records] == ["diasafety:train:1", "diasafety:train:2", "diasafety:train:3"]
    assert [r.label for r in records] == ["borderline", "safe", "unsafe"]
    assert records[0].categories == {"suicide_self_harm"}
    assert records[0].text == "I want to end my life"  # the context, not the bot's response


def test_counsel_chat_adapter_one_row_per_question(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        [
            {
                "questionID": "1",
                "questionTitle": "Can't sleep",
                "questionText": "Every night.",
                "topic": "sleep-improvement",
                "answerText": "a1",
            },
            {
                "questionID": "1",
                "questionTitle": "Can't sleep",
                "questionText": "Every night.",
                "topic": "sleep-improvement",
                "answerText": "a2",
            },
            {
                "questionID": "2",
                "questionTitle": "Hurting",
                "questionText": "I hurt myself again.",
                "topic": "depression",
                "answerText": "a3",
            },
        ]
    )
    path = tmp_path / "counsel.csv"
    frame.to_csv(path)
    config = CounselChatSource.model_validate(
        {
            "name": "counsel_chat",
            "kind": "counsel_chat",
            "path": str(path),
            "keywords": {"suicide_self_harm": ["hurt myself"]},
            "topic_map": {"sleep-improvement": {"label": "safe"}},
            "default": {"label": "borderline", "keywords": True},
        }
    )
    records = read_counsel_chat(path, config)
    assert [(r.id, r.label, sorted(r.categories)) for r in records] == [
        ("counsel_chat:1", "safe", []),
        ("counsel_chat:2", "borderline", ["suicide_self_harm"]),
    ]


def test_read_source_resolves_paths_against_root(project: Path) -> None:
    from components.config import load_params

    params = load_params(project / "params.yaml")
    records = read_source(params.prepare.sources[0], project)
    assert len(records) == 30 and records[0].id == "tiny:t001"


@pytest.mark.parametrize(
    ("ids", "rule"),
    [
        ([None, "b"], "id is missing"),
        ([1, 1.0], "duplicate id '1'"),
        ([True, "b"], "id is missing"),
        ([{"x": 1}, "b"], "must be a string or a number"),
    ],
)
def test_ids_are_present_scalar_and_one_number_is_one_id(tmp_path: Path, ids: list[object], rule: str) -> None:
    """`id: null` once became the id 'None', and 1 and 1.0 two different ids (hardening, item 15)."""
    from components.config import EmosafeSource
    from components.data.sources import read_emosafe

    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": "hello there", "label": "safe"}) + "\n" for i in ids))
    with pytest.raises(DataRowError, match=rule):
        read_emosafe(path, EmosafeSource(name="m", kind="emosafe", path=str(path)))


def test_a_deeply_nested_line_is_a_row_error_not_a_recursion_crash(tmp_path: Path) -> None:
    """json.loads raised RecursionError on 100,000 nested brackets (hardening, item 12)."""
    from components.config import EmosafeSource
    from components.data.sources import read_emosafe

    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "hello", "label": "safe"}) + "\n" + "[" * 100_000 + "\n")
    with pytest.raises(DataRowError, match=r"row 2.*nested too deeply"):
        read_emosafe(path, EmosafeSource(name="m", kind="emosafe", path=str(path)))
