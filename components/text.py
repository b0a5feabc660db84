"""Text normalisation and hashing.

Normalisation is deliberately light (Unicode NFC, whitespace collapsed) so the stored text is still what the person
wrote. The hash key additionally case-folds, so "I want to die" and "i want to die " count as the same message for
de-duplication and for train/test leakage checks.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_WHITESPACE = re.compile(r"\s+", flags=re.UNICODE)


def normalise(text: str) -> str:
    """NFC-normalise and collapse every run of Unicode whitespace to one space, trimmed."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def text_hash(text: str) -> str:
    """sha256 (hex) of the case-folded normalised text: safe to log, stable across runs and machines."""
    return hashlib.sha256(normalise(text).casefold().encode("utf-8")).hexdigest()
