"""Model names, aliases and ``name@alias`` / ``name@version`` references, validated before they touch a path or SQL.

Names are slugs (``emosafe-trinary``), so no ``..``, slash, NUL or shell meta-character can reach the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from components.errors import RegistryError

_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")  # whole string (fullmatch): `$` would accept a final newline
_VERSION = re.compile(r"v?([0-9]{1,9})")  # ASCII digits only: str.isdigit accepts '²' and '٣'; 9 digits fit SQLite
ALIASES: Final[tuple[str, ...]] = ("candidate", "staging", "production")
#: Aliases that only a passing gate decision (or ``--force --reason``) may move.
GUARDED_ALIASES: Final[frozenset[str]] = frozenset({"staging", "production"})
#: The alias whose holder is the champion every candidate is compared with.
CHAMPION_ALIAS: Final[str] = "production"


def default_name(task: str) -> str:
    """One registered model per task: ``emosafe-trinary``, ``emosafe-taxonomy``."""
    return validate_name(f"emosafe-{task}")


def validate_name(name: str) -> str:
    if len(name) > 64 or not _NAME.fullmatch(name):
        raise RegistryError(
            f"model name {name!r}: must be a lower-case slug of letters, digits and single hyphens (max 64), "
            "e.g. emosafe-trinary"
        )
    return name


def validate_alias(alias: str) -> str:
    if alias not in ALIASES:
        raise RegistryError(f"alias {alias!r}: must be one of {', '.join(ALIASES)}")
    return alias


@dataclass(frozen=True)
class ModelRef:
    """``name@alias`` or ``name@version``; exactly one of ``alias`` / ``version`` is set."""

    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.alias if self.alias else self.version}"


def parse_ref(text: str, default_alias: str = "production") -> ModelRef:
    """Parse ``emosafe-trinary@production``, ``emosafe-trinary@3``, ``emosafe-trinary@v3`` or a bare name.

    Raises RegistryError naming the reference and the rule.
    """
    name, _, tail = text.partition("@")
    validate_name(name)
    tail = tail or default_alias
    version = _VERSION.fullmatch(tail)
    if version:
        if int(version.group(1)) < 1:
            raise RegistryError(f"reference {text!r}: versions start at 1")
        return ModelRef(name, version=int(version.group(1)))
    if tail not in ALIASES:
        raise RegistryError(f"reference {text!r}: after '@' give a version number or one of {', '.join(ALIASES)}")
    return ModelRef(name, alias=tail)
