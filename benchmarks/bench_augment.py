"""SmolLM2-135M-Instruct as the augment generator on CPU: load time, rewrites/s and generated tokens/s.

Uses the shipped prompt (prompts/augment/reinterpret_v1.txt) on sample train messages, the stage's own
LocalGenerator and sampling defaults, after a 2-message warm-up. Generated tokens are counted up to EOS.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run(messages: int = 32, batch_size: int = 16, max_new_tokens: int = 64) -> dict[str, Any]:
    import pandas as pd
    import torch

    from components.data.generators import GenerationRequest, Sampling
    from components.data.generators.local_lm import LocalGenerator
    from components.data.prompts import parse_prompt
    from components.models import SMOLLM2

    torch.set_num_threads(2)
    path = REPO / "prompts" / "augment" / "reinterpret_v1.txt"
    prompt = parse_prompt(path.read_text(), "reinterpret_v1", str(path), "-")
    frame = pd.read_json(REPO / "data" / "sample" / "messages.jsonl", lines=True)
    texts = frame["text"].astype(str).tolist()[:messages]
    start = time.perf_counter()
    generator = LocalGenerator.from_source(SMOLLM2, "smollm2", batch_size)
    load_s = time.perf_counter() - start
    sampling = Sampling(max_new_tokens, 0.7, 0.9)
    requests = [GenerationRequest(prompt.render(text), 13) for text in texts]
    generator.generate(requests[:2], sampling)  # warm-up
    start = time.perf_counter()
    outputs = generator.generate(requests, sampling)
    seconds = time.perf_counter() - start
    tokenizer = generator._tokenizer
    tokens = sum(len(tokenizer(o.text, add_special_tokens=False)["input_ids"]) + (not o.truncated) for o in outputs)
    return {
        "model": "SmolLM2-135M-Instruct (Q4_1 GGUF de-quantised to fp32), 2 threads",
        "messages": messages,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "load_seconds": round(load_s, 1),
        "generate_seconds": round(seconds, 1),
        "rewrites_per_second": round(messages / seconds, 3),
        "generated_tokens_per_second": round(tokens / seconds, 1),
        "truncated": sum(o.truncated for o in outputs),
    }
