"""Great Expectations behind one door: run the gate's suites on pandas frames, return emosafe's own report.

This is the only module that imports ``great_expectations``; a GX upgrade touches this file alone. GX runs in an
in-memory (ephemeral) context, so it writes nothing into the project, the working folder or the home folder; the
only files it produces are the Data Docs, and only into the folder the caller names.

Raw message text must never leave this module. GX can embed unexpected *values* in its results (and so in the Data
Docs and any JSON), so the result format asks for ids only (``exclude_unexpected_values`` with ``id`` as the index
column), and every result is then passed through an allow-list (``sanitize_result``) before it is stored, rendered
or returned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd

from components.data.expectations import ExpectationSpec, SuiteSpec

# GX announces every API it registers at INFO on import; keep its warnings, drop that chatter.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

import great_expectations as gx  # noqa: E402  (after the logger is quietened)
import great_expectations.expectations as gxe  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.row_conditions import Column  # noqa: E402

log = logging.getLogger(__name__)

GX_VERSION: Final[str] = gx.__version__
#: Example ids kept per failed expectation.
MAX_EXAMPLE_IDS: Final = 10
ID_COLUMN: Final = "id"
RESULT_FORMAT: Final[dict[str, Any]] = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": MAX_EXAMPLE_IDS,
    "unexpected_index_column_names": [ID_COLUMN],
    "return_unexpected_index_query": False,
    "exclude_unexpected_values": True,
    "include_unexpected_rows": False,
}
#: Result keys that carry counts or ids, never data values; anything else GX adds is dropped.
_SAFE_RESULT_KEYS: Final = frozenset(
    {
        "element_count",
        "unexpected_count",
        "unexpected_percent",
        "unexpected_percent_total",
        "unexpected_percent_nonmissing",
        "missing_count",
        "missing_percent",
        "unexpected_index_column_names",
    }
)
_INDEX_LIST_KEYS: Final = ("partial_unexpected_index_list", "unexpected_index_list")
_WITHHELD: Final = "GX could not evaluate this expectation (usually a missing or mistyped column); details withheld"


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict: counts and example row ids, never values."""

    suite: str
    rule: str
    expectation: str
    column: str | None
    description: str
    success: bool
    unexpected_count: int | None
    example_ids: tuple[str, ...]
    errored: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "rule": self.rule,
            "expectation": self.expectation,
            "column": self.column,
            "description": self.description,
            "success": self.success,
            "unexpected_count": self.unexpected_count,
            "example_ids": list(self.example_ids),
            "errored": self.errored,
        }


@dataclass(frozen=True)
class ValidationReport:
    """The gate's verdict. ``gx_results`` are GX's own (sanitised) result documents, one per suite."""

    success: bool
    outcomes: tuple[ExpectationOutcome, ...]
    gx_version: str
    gx_results: tuple[dict[str, Any], ...]

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(outcome for outcome in self.outcomes if not outcome.success)

    def failed_rules(self) -> set[str]:
        return {outcome.rule for outcome in self.failures}

    def to_dict(self) -> dict[str, Any]:
        """Deterministic (no timestamps or random ids), so the same data gives the same bytes."""
        return {
            "success": self.success,
            "gx_version": self.gx_version,
            "statistics": {"expectations": len(self.outcomes), "failed": len(self.failures)},
            "failed_rules": sorted(self.failed_rules()),
            "expectations": [outcome.to_dict() for outcome in self.outcomes],
        }


def run_suites(
    frames: Mapping[str, pd.DataFrame], suites: Sequence[SuiteSpec], docs_dir: Path | None = None
) -> ValidationReport:
    """Validate each suite on the frame of the same name; build Data Docs into ``docs_dir`` when given.

    Every frame needs an ``id`` column (GX reports failing rows by it). A suite with no expectations is skipped.
    An expectation that cannot be evaluated (say, its column is missing) counts as failed, with ``errored`` set.
    Raises KeyError when a suite has no frame, and GX's own errors for a malformed expectation (a bug, not input).
    """
    context = _context(docs_dir)
    source = context.data_sources.add_pandas("emosafe")
    outcomes: list[ExpectationOutcome] = []
    results: list[dict[str, Any]] = []
    for suite in suites:
        if suite.expectations:
            result = _run_suite(context, source, suite, frames[suite.name])
            results.append(result)
            outcomes.extend(_outcomes(suite, result))
    _replace_stored_results(context)
    if docs_dir is not None:
        context.build_data_docs()
        log.info("Data Docs built in %s", docs_dir)
    success = all(outcome.success for outcome in outcomes)
    return ValidationReport(success, tuple(outcomes), GX_VERSION, tuple(results))


def _run_suite(context: Any, source: Any, suite: SuiteSpec, frame: pd.DataFrame) -> dict[str, Any]:
    """Register the suite and its frame with GX, validate, and return the sanitised result document."""
    batch = source.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe("whole")
    # Built whole, then stored once: add_expectation re-serialises the whole suite on every call.
    expectations = [_expectation(spec, index) for index, spec in enumerate(suite.expectations)]
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name, expectations=expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite)
    )
    result = definition.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)
    log.info(
        "suite %s: %d rows, %d expectations, success=%s", suite.name, len(frame), len(expectations), result.success
    )
    return sanitize_result(result.to_json_dict())


def _context(docs_dir: Path | None) -> Any:
    """An in-memory GX context, analytics and progress bars off, with one local Data Docs site (if asked)."""
    sites = {}
    if docs_dir is not None:
        sites["local_site"] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites=sites,
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _expectation(spec: ExpectationSpec, index: int) -> Any:
    kwargs: dict[str, Any] = dict(spec.kwargs)
    if spec.when is not None:
        column, value = spec.when
        kwargs["row_condition"] = Column(column) == value
    kind = getattr(gxe, spec.expectation)
    return kind(**kwargs, description=spec.description, meta={"rule": spec.rule, "index": index})


def sanitize_result(result: dict[str, Any]) -> dict[str, Any]:
    """Keep only counts, ids and configuration in a GX suite result; drop values, exception texts and tracebacks.

    Defence in depth: the result format already excludes values, but GX versions differ in what they add.
    """
    clean = dict(result)
    clean["results"] = [_sanitize_one(one) for one in result.get("results", [])]
    return clean


def _sanitize_one(one: dict[str, Any]) -> dict[str, Any]:
    raw = one.get("result") or {}
    result = {key: value for key, value in raw.items() if key in _SAFE_RESULT_KEYS}
    observed = raw.get("observed_value")
    if isinstance(observed, bool | int | float) or one["expectation_config"]["type"].endswith("_in_type_list"):
        result["observed_value"] = observed  # a number, or a dtype name
    for key in _INDEX_LIST_KEYS:
        if key in raw:
            result[key] = [{ID_COLUMN: entry[ID_COLUMN]} for entry in raw[key] if ID_COLUMN in entry]
    raised = bool((one.get("exception_info") or {}).get("raised_exception"))
    withheld = _WITHHELD if raised else None  # GX's message or traceback may quote data; the Data Docs need a str
    return {
        **one,
        "result": result,
        "exception_info": {"raised_exception": raised, "exception_message": withheld, "exception_traceback": withheld},
    }


def _replace_stored_results(context: Any) -> None:
    """Data Docs render from the results store, so it must hold the sanitised results only."""
    store = context.validation_results_store
    for key in store.list_keys():
        store.set(key, store.deserialize(sanitize_result(store.get(key).to_json_dict())))


def _outcomes(suite: SuiteSpec, result: dict[str, Any]) -> list[ExpectationOutcome]:
    """One outcome per expectation, in the suite's declared order (GX may reorder its results)."""
    indexed = []
    for one in result["results"]:
        config = one["expectation_config"]
        index = int(config["meta"]["index"])
        spec = suite.expectations[index]
        details = one["result"]
        outcome = ExpectationOutcome(
            suite=suite.name,
            rule=spec.rule,
            expectation=config["type"],
            column=spec.kwargs.get("column") or _pair(spec),
            description=spec.description,
            success=bool(one["success"]),
            unexpected_count=details.get("unexpected_count"),
            example_ids=_example_ids(details),
            errored=bool(one["exception_info"]["raised_exception"]),
        )
        indexed.append((index, outcome))
    return [outcome for _, outcome in sorted(indexed, key=lambda pair: pair[0])]


def _pair(spec: ExpectationSpec) -> str | None:
    if "column_A" in spec.kwargs:
        return f"{spec.kwargs['column_A']}, {spec.kwargs['column_B']}"
    return None


def _example_ids(details: Mapping[str, Any]) -> tuple[str, ...]:
    """GX lists failing ids as ``[{"id": [a, b]}]`` when values are excluded, ``[{"id": a}, ...]`` otherwise."""
    ids: list[str] = []
    for entry in details.get("partial_unexpected_index_list") or []:
        value = entry.get(ID_COLUMN)
        if isinstance(value, list):
            ids.extend(str(one) for one in value)
        elif value is not None:
            ids.append(str(value))
    return tuple(ids[:MAX_EXAMPLE_IDS])
