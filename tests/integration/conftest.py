"""Fixtures the integration suites share."""

from tests.fixtures.augment_project import root  # noqa: F401  (the augment project folder, a pytest fixture)
