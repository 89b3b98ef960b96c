"""How likely words are under a model: each word's log-probability and each character's surprisal, and the
distribution of the character after a prefix."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from makemore.data import BOUNDARY, IGNORE, Vocab, build_sequences, build_windows
from makemore.errors import ConfigError
from makemore.lists import composed
from makemore.models import device_of
from makemore.models.base import evaluating
from makemore.sample import Options, make_step


@torch.no_grad()
def next_char_probs(model, vocab: Vocab, prefix: str = "", *, cls: int | None = None) -> list[float]:
    """The model's distribution of the character after prefix (index = token; 0 is the end), temperature 1."""
    prefix = Options(prefix=prefix).check(vocab).prefix  # composed, as the list's items are
    device = device_of(model)
    with evaluating(model):
        step = make_step(model, 1, None if cls is None else torch.tensor([cls], device=device))
        for token in [BOUNDARY, *vocab.encode(prefix)]:
            logits = step(torch.tensor([token], device=device))  # (1, V): the character after what was stepped
    return F.softmax(logits[0].double(), dim=-1).tolist()


@dataclass
class Score:
    """How likely a word is under the model: log-probability of its characters and end, per character (its
    mean), and each character's surprisal (-log p, in nats; the last is the end's)."""

    word: str
    logprob: float
    mean: float
    surprisal: list[float]


@torch.no_grad()
def score(model, vocab: Vocab, words, cls: int | None = None) -> list[Score]:
    """Each word's Score, from one forward pass over the words (whole words for sequence models, windows for
    window models). Each word in Unicode's composed form, as the list's items are."""
    words = [composed(w) if isinstance(w, str) else w for w in words]
    for w in words:
        unknown = vocab.unknown(w)
        if unknown:
            raise ConfigError("words", f"character {unknown[0]!r} of {w!r} is not in the model's vocabulary")
    if not words:
        return []
    device = device_of(model)
    with evaluating(model):
        if model.windowed:
            X, Y = build_windows(words, vocab, model.config.block_size)
            logp = F.log_softmax(model(X.to(device))[0].double(), dim=-1)  # (N, V)
            per_target = logp.gather(1, Y.to(device)[:, None])[:, 0]
            rows = per_target.split([len(w) + 1 for w in words])
        else:
            length = max(map(len, words)) + 1
            if getattr(model, "longest_word", None) is not None and length > model.config.block_size:
                raise ConfigError("words", f"a word of {length - 1} characters is longer than this model sees "
                                           f"({model.config.block_size - 1})")
            X, Y = build_sequences(words, vocab, length)
            extra = () if cls is None else (None, torch.full((len(words),), cls, dtype=torch.long, device=device))
            logp = F.log_softmax(model(X.to(device), *extra)[0].double(), dim=-1)  # (N, T, V)
            Y = Y.to(device)
            per_target = logp.gather(2, Y.clamp(min=0)[..., None])[..., 0]
            rows = [row[y != IGNORE] for row, y in zip(per_target, Y)]
    return [Score(w, r.sum().item(), r.mean().item(), (-r).tolist()) for w, r in zip(words, rows)]
