"""Answer-option log-likelihoods after a prompt, computing the shared prompt prefix once.

A prompting setting scores every message against the same long prefix (instructions, definitions, few-shot
examples). Running that prefix for every (message, answer) pair is the naive cost; here its key/value cache is
computed once and expanded over each batch, so only the short message-specific tokens are run per row. When every
answer is a single token, one row per message reads all answers at its last position (no row per answer).

Sequences are right-padded: with causal attention a real token never sees a pad that follows it, and the cached
prefix occupies positions 0..P-1 for every row. Logits are taken only at the positions that predict answer tokens
(``lm_head`` on gathered hidden states), which keeps memory flat for 49k-token vocabularies. That shortcut assumes
logits = output embeddings(last hidden state), true for the LLaMA family used here; the test compares against a
plain full forward pass. ``use_prefix_cache=False`` is the naive reference the benchmark measures against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

Row = tuple[list[int], int | None]  # (tokens after the prefix, answer index or None = read every single-token answer)


def score_options(
    model: PreTrainedModel,
    prefix_ids: Sequence[int],
    bodies: Sequence[Sequence[int]],
    options: Sequence[Sequence[int]],
    batch_size: int = 8,
    use_prefix_cache: bool = True,
) -> NDArray[np.float64]:
    """Sum of log-probabilities of each option's tokens after ``prefix + body``: shape (len(bodies), len(options)).

    Raises ValueError on an empty option or body (there would be no position to score from).
    """
    import torch

    if not options or any(len(option) == 0 for option in options) or any(len(body) == 0 for body in bodies):
        raise ValueError("every option and every body needs at least one token")
    prefix = [int(t) for t in prefix_ids]
    cached = use_prefix_cache and bool(prefix)
    single = cached and all(len(option) == 1 for option in options)
    rows: list[Row] = (
        [([int(t) for t in body], None) for body in bodies]
        if single
        else [
            ([int(t) for t in body] + [int(t) for t in option], j)
            for body in bodies
            for j, option in enumerate(options)
        ]
    )
    lengths = [len(body) for body in bodies for _ in range(1 if single else len(options))]
    out = np.zeros((len(rows), len(options)))
    with torch.inference_mode():
        kv = _prefix_kv(model, prefix) if cached else None
        starts = range(0, len(rows), batch_size)
        for start in tqdm(starts, desc="scoring", unit="batch", leave=False, disable=len(starts) < 20):
            batch = rows[start : start + batch_size]
            out[start : start + len(batch)] = _score_batch(
                model, prefix, kv, batch, lengths[start : start + len(batch)], options
            )
    if single:
        return out
    summed: NDArray[np.float64] = out.reshape(len(bodies), len(options), len(options)).sum(axis=2)
    return summed


def _prefix_kv(model: PreTrainedModel, prefix: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Key/value tensors of the prefix, one (key, value) pair per layer, batch size 1."""
    import torch

    ids = torch.tensor([prefix], dtype=torch.long, device=model.device)
    output = model.base_model(input_ids=ids, use_cache=True)
    return [(layer.keys, layer.values) for layer in output.cache.layers]


def _score_batch(
    model: PreTrainedModel,
    prefix: list[int],
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None,
    rows: list[Row],
    body_lengths: list[int],
    options: Sequence[Sequence[int]],
) -> NDArray[np.float64]:
    import torch
    from transformers import DynamicCache

    offset = 0 if kv is not None else len(prefix)
    sequences = [tokens if kv is not None else prefix + tokens for tokens, _ in rows]
    ids, mask = _pad_right(sequences, model.device)
    kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "use_cache": False}
    if kv is not None:
        size = len(rows)
        cache = DynamicCache(ddp_cache_data=[(k.expand(size, -1, -1, -1), v.expand(size, -1, -1, -1)) for k, v in kv])
        prefix_mask = torch.ones((size, len(prefix)), dtype=mask.dtype, device=mask.device)
        kwargs |= {"attention_mask": torch.cat([prefix_mask, mask], dim=1), "cache": cache, "use_cache": True}
    hidden = model.base_model(**kwargs).last_hidden_state
    row_index, positions, targets = [], [], []
    for i, ((_, answer), length) in enumerate(zip(rows, body_lengths, strict=True)):
        last = offset + length - 1
        span = 1 if answer is None else len(options[answer])
        row_index += [i] * span
        positions += list(range(last, last + span))
        targets += [-1] if answer is None else list(options[answer])
    head = model.get_output_embeddings()  # type: ignore[no-untyped-call]
    logp = torch.log_softmax(head(hidden[row_index, positions]).float(), dim=-1)
    result = torch.zeros((len(rows), len(options)), dtype=torch.float64)
    row_t, target_t = torch.tensor(row_index), torch.tensor(targets)
    single = target_t < 0
    if bool(single.any()):
        result[row_t[single]] = logp[single][:, [option[0] for option in options]].double()
    pair = ~single
    if bool(pair.any()):
        answer_t = torch.tensor([-1 if rows[i][1] is None else rows[i][1] for i in row_index])
        values = logp[pair.nonzero().squeeze(1), target_t[pair]].double()
        result.index_put_((row_t[pair], answer_t[pair]), values, accumulate=True)
    return result.cpu().numpy()


def _pad_right(sequences: list[list[int]], device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, sequence in enumerate(sequences):
        ids[i, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[i, : len(sequence)] = 1
    return ids.to(device), mask.to(device)
