"""Hooks and the ``model`` fixture of the behavioural suite (the loading itself is in tests/model/loading.py).

``--model`` is registered in tests/conftest.py, so ``pytest --model ...`` also works from the repository root.
Without ``--model`` every test here skips, so plain ``pytest`` stays model-free. A model that cannot be loaded (an
unknown alias, no registry, a damaged bundle) stops the run with one ``ERROR: --model ...`` line (exit code 4), not
one traceback per test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.model.loading import ModelUnderTest, load_model_under_test

HERE = Path(__file__).resolve().parent
MODEL = pytest.StashKey[ModelUnderTest]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if item.path.is_relative_to(HERE)]
    reference = config.getoption("--model", default=None)
    if not ours:
        return
    if not reference:
        skip = pytest.mark.skip(reason="behavioural suite: give a trained model with --model (name@alias or a folder)")
        for item in ours:
            item.add_marker(skip)
        return
    from components.errors import EmosafeError

    params_path = Path(config.getoption("--model-params", default="params.yaml"))
    try:
        config.stash[MODEL] = load_model_under_test(str(reference), params_path)
    except EmosafeError as exc:
        message = f"--model {reference}: {exc}"
    else:
        return
    raise pytest.UsageError(message)


@pytest.fixture(scope="session")
def model(pytestconfig: pytest.Config) -> ModelUnderTest:
    return pytestconfig.stash[MODEL]
