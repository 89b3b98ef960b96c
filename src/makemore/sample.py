"""Generation: many words at once, each stopping at its own end token; and novelty against the data."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from makemore.data import BOUNDARY, Vocab
from makemore.errors import UserError


def check_sampling_options(vocab: Vocab, temperature: float, prefix: str):
    if not temperature > 0:
        raise UserError(f"--temperature: must be above 0, got {temperature}")
    unknown = vocab.unknown(prefix)
    if unknown:
        raise UserError(f"--prefix: character {unknown[0]!r} is not in the model's vocabulary")


def next_token(logits, temperature: float, top_k: int | None, generator):
    """Sample one token per row of logits (B, V) -> (B, 1)."""
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, [-1]]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


@torch.no_grad()
def generate(
    model,
    vocab: Vocab,
    n: int,
    *,
    max_len: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    generator: torch.Generator | None = None,
) -> list[str]:
    """n words, generated as one batch; each is prefix + the characters up to its first end token.

    A word that reaches max_len characters without an end token is cut there.
    """
    check_sampling_options(vocab, temperature, prefix)
    top_k = None if top_k is None else max(1, min(top_k, vocab.size))
    device = next(iter(model.buffers()), next(iter(model.parameters()), None)).device
    was_training = model.training
    model.eval()
    block_size = model.config.block_size
    prefix_ids = vocab.encode(prefix)
    context = torch.full((n, block_size), BOUNDARY, dtype=torch.long, device=device)  # (B, T)
    if prefix_ids:
        tail = torch.tensor(prefix_ids[-block_size:], device=device)
        context[:, block_size - len(tail) :] = tail
    out = torch.empty((n, max(max_len - len(prefix_ids), 0)), dtype=torch.long, device=device)  # (B, L)
    for t in range(out.shape[1]):
        logits, _ = model(context)  # (B, V)
        ix = next_token(logits, temperature, top_k, generator)  # (B, 1)
        out[:, t] = ix[:, 0]
        context = torch.cat([context[:, 1:], ix], dim=1)
        if t % 8 == 7 and (out[:, : t + 1] == BOUNDARY).any(dim=1).all():
            out = out[:, : t + 1]
            break
    model.train(was_training)
    return [prefix + vocab.decode(row) for row in out.tolist()]


def novelty(samples, known) -> float:
    """The share of samples that are not in known (the items the model was trained from)."""
    if not samples:
        return float("nan")
    known = known if isinstance(known, (set, frozenset)) else set(known)
    return sum(s not in known for s in samples) / len(samples)


def default_max_len(items, prefix: str = "") -> int:
    """Words are cut at twice the longest item: long enough for any plausible word, short enough to end."""
    return 2 * max(map(len, items)) + len(prefix)
