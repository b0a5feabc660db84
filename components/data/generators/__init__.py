"""Text generators behind one small Protocol, so the augment stage does not care what produces the text.

Two implementations: ``local_lm.LocalGenerator`` (a Hugging Face causal LM on this machine, SmolLM2 by default) and
``chat_api.ChatAPIGenerator`` (any OpenAI-compatible ``/chat/completions`` endpoint: ChatGPT, vLLM, Ollama,
llama.cpp server). Tests plug in scripted fakes through the same Protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from components.data.prompts import ChatMessage
from components.config.augment import AugmentConfig
from components.models import ModelSource


@dataclass(frozen=True)
class Sampling:
    """How to sample. ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int
    temperature: float
    top_p: float


@dataclass(frozen=True)
class GenerationRequest:
    messages: tuple[ChatMessage, ...]
    seed: int


@dataclass(frozen=True)
class Generation:
    """One completion. ``truncated``: the generator stopped at the token budget instead of finishing."""

    text: str
    truncated: bool


class Generator(Protocol):
    """What the augment stage needs. ``kind`` and ``model`` are recorded on every row and in cache keys."""

    kind: str
    model: str
    batch_size: int

    def generate(self, requests: Sequence[GenerationRequest], sampling: Sampling) -> list[Generation]:
        """One Generation per request, in order. Raises EmosafeError on failures the user can fix."""
        ...


def local_source(config: AugmentConfig) -> ModelSource:
    return ModelSource(path=config.local.model, gguf_file=config.local.gguf_file, revision=config.local.revision)


def generator_identity(config: AugmentConfig) -> tuple[str, str]:
    """(kind, model) as recorded per row, known without loading anything (cache lookups need no model)."""
    if config.generator == "openai":
        return "openai", config.openai.model
    source = local_source(config)
    model = source.path + (f"/{source.gguf_file}" if source.gguf_file else "")
    return "local", model + (f"@{source.revision}" if source.revision else "")


def build_generator(config: AugmentConfig) -> Generator:
    """Construct the configured generator (loads the local model, or checks the API key is present)."""
    if config.generator == "openai":
        from components.data.generators.chat_api import ChatAPIGenerator

        return ChatAPIGenerator.from_config(config.openai)
    from components.data.generators.local_lm import LocalGenerator

    model_id = generator_identity(config)[1]
    return LocalGenerator.from_source(local_source(config), model_id=model_id, batch_size=config.local.batch_size)
