"""Flow tasks retry what may pass next time, never an input error (#22: a bad input was retried twice)."""

from __future__ import annotations

from typing import Any

import pytest
from prefect.states import Failed

from components.errors import EmosafeError, SourceFileError
from flows.common import retry_unless_input_error


def test_input_errors_are_not_retried_other_failures_are() -> None:
    assert not retry_unless_input_error(None, None, Failed(data=SourceFileError("x.jsonl", "bad")))
    assert not retry_unless_input_error(None, None, Failed(data=EmosafeError("bad params")))
    assert retry_unless_input_error(None, None, Failed(data=OSError("disk busy")))
    assert retry_unless_input_error(None, None, Failed(data=None))


def _tasks() -> list[Any]:
    from flows import monitor, pipeline, reevaluate, train

    return [
        value
        for module in (monitor, pipeline, reevaluate, train)
        for value in vars(module).values()
        if getattr(value, "retries", 0) and hasattr(value, "retry_condition_fn")
    ]


@pytest.mark.parametrize("task", _tasks(), ids=lambda task: task.name)
def test_every_retrying_task_skips_input_errors(task: Any) -> None:
    assert task.retry_condition_fn is retry_unless_input_error


def test_the_retrying_tasks_were_found() -> None:
    assert {"monitor", "reevaluate", "prepare", "augment", "train"} <= {task.name for task in _tasks()}
