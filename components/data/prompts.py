"""Versioned prompt templates (``prompts/<stage>/<name>_v<N>.txt``): parsing, rendering, and reading answers.

A template is plain text with sections, so reviewers diff prompts like code and every generated row can name the
exact prompt version that produced it::

    # version: reinterpret_v1        <- must equal the file name's stem
    [system]
    ...
    [example.user] / [example.assistant]   (any number of few-shot pairs)
    [user]
    ... {message} ...

``{message}`` is replaced literally (no ``str.format``), so braces in a message cannot break rendering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.errors import EmosafeError
from components.schema import CATEGORIES, LABELS, consistency_problem

PLACEHOLDER = "{message}"
_SECTION = re.compile(r"^\[(system|user|example\.user|example\.assistant)\]\s*$")
_VERSION = re.compile(r"^#\s*version:\s*(\S+)\s*$")
_LABEL_WORD = re.compile(r"\b(" + "|".join(LABELS) + r")\b", flags=re.IGNORECASE)
_CATEGORY_WORD = re.compile(r"\b(" + "|".join(CATEGORIES) + r")\b", flags=re.IGNORECASE)


class PromptError(EmosafeError):
    """A prompt template file is missing, mislabelled or malformed."""


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system | user | assistant
    content: str


@dataclass(frozen=True)
class Prompt:
    """A parsed template. ``version`` is what rows record; ``sha256`` of the file goes into cache keys."""

    version: str
    system: str
    examples: tuple[tuple[str, str], ...]
    user: str
    sha256: str

    def render(self, message: str) -> tuple[ChatMessage, ...]:
        """System turn, few-shot turns, then the user turn with the message in place of ``{message}``."""
        turns = [ChatMessage("system", self.system)] if self.system else []
        for user, assistant in self.examples:
            turns += [ChatMessage("user", user), ChatMessage("assistant", assistant)]
        return (*turns, ChatMessage("user", self.user.replace(PLACEHOLDER, message)))


def parse_prompt(text: str, version: str, origin: str, sha256: str) -> Prompt:
    """Parse a template; ``version`` is the expected one (the file stem). Raises PromptError naming the file."""
    lines = text.splitlines()
    declared = next((m.group(1) for line in lines if (m := _VERSION.match(line))), None)
    if declared != version:
        raise PromptError(f"{origin}: header must declare '# version: {version}' (found {declared!r})")
    sections: list[tuple[str, list[str]]] = []
    for number, line in enumerate(lines, start=1):
        match = _SECTION.match(line)
        if match:
            sections.append((match.group(1), []))
        elif sections:
            sections[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):
            raise PromptError(f"{origin} line {number}: text before the first [section] must be a '#' comment")
    bodies = [(name, "\n".join(body).strip()) for name, body in sections]
    names = [name for name, _ in bodies]
    if names.count("user") != 1 or names[-1] != "user":
        raise PromptError(f"{origin}: needs exactly one [user] section, and it must come last")
    if names.count("system") > 1 or ("system" in names and names[0] != "system"):
        raise PromptError(f"{origin}: at most one [system] section, and it must come first")
    user = bodies[-1][1]
    if PLACEHOLDER not in user:
        raise PromptError(f"{origin}: the [user] section must contain the {PLACEHOLDER} placeholder")
    shots = [body for name, body in bodies if name.startswith("example.")]
    if names[1 if "system" in names else 0 : -1] != ["example.user", "example.assistant"] * (len(shots) // 2):
        raise PromptError(f"{origin}: examples must come as [example.user] then [example.assistant] pairs")
    system = bodies[0][1] if names[0] == "system" else ""
    return Prompt(version, system, tuple(zip(shots[::2], shots[1::2], strict=True)), user, sha256)


@dataclass(frozen=True)
class LabelAnswer:
    """A generator's labelling answer, read leniently. ``problem`` is None when it is usable."""

    label: str | None
    categories: frozenset[str]
    problem: str | None  # "unparsable" | "inconsistent" | None


def parse_label_answer(answer: str) -> LabelAnswer:
    """Read ``label: <label>; categories: <ids>`` (or any text naming exactly one label word).

    Unparsable: no label word, or two different ones ("safe or unsafe"). Inconsistent: the pair breaks the
    taxonomy rules (safe with a category, unsafe with none). Callers fall back to the parent's labels either way.
    """
    head = answer.partition("categor")[0]  # label words after "categories:" are not the label
    labels = {word.lower() for word in _LABEL_WORD.findall(head)}
    categories = frozenset(word.lower() for word in _CATEGORY_WORD.findall(answer))
    if len(labels) != 1:
        return LabelAnswer(None, categories, "unparsable")
    label = labels.pop()
    if consistency_problem(label, categories):
        return LabelAnswer(label, categories, "inconsistent")
    return LabelAnswer(label, categories, None)
