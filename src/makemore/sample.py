"""Generation: many words at once, each stopping at its own end token; and novelty against the data."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from makemore.data import BOUNDARY, Vocab
from makemore.errors import ConfigError
from makemore.fields import Field
from makemore.models import device_of

SAMPLING = {  # the sampling options a user gives, checked here and made into flags by the command line
    "n": Field(int, "how many names", low=0),
    "temperature": Field(float, "below 1: likelier characters; above 1: more surprising ones", low=0),
    "top_k": Field(int, "sample among the k likeliest characters (clamped to the vocabulary)", low=0),
    "prefix": Field(str, "every name starts with this"),
    "seed": Field(int, "for repeatable output", low=0, low_inclusive=True),
}


def check_sampling_options(vocab: Vocab, temperature: float, prefix: str, top_k: int | None = None):
    SAMPLING["temperature"].check("temperature", temperature)
    if top_k is not None:
        SAMPLING["top_k"].check("top_k", top_k)
    unknown = vocab.unknown(prefix)
    if unknown:
        raise ConfigError("prefix", f"character {unknown[0]!r} is not in the model's vocabulary")


def next_token(logits, temperature: float, top_k: int | None, generator):
    """Sample one token per row of logits (B, V) -> (B, 1)."""
    # the max first: a temperature near 0 then gives 0 and -inf (argmax), never inf - inf
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, [-1]]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    cdf = F.softmax(logits, dim=-1).cumsum(dim=-1)  # (B, V)
    # inverse-CDF sampling: one uniform per row (torch.multinomial draws one exponential per row and token)
    u = torch.rand((cdf.shape[0], 1), generator=generator, device=cdf.device) * cdf[:, -1:]
    return (cdf < u).sum(dim=-1, keepdim=True)  # (B, 1); u < cdf[:, -1] keeps it below V


class NaiveStep:
    """Next-token logits by running the model over the recent history: the window for window models, the last
    receptive field of tokens for sequence models."""

    def __init__(self, model, batch_size: int, device, cls=None):
        self.model, self.cls = model, cls
        self.context = model.config.block_size if model.windowed else model.receptive_field
        pad = self.context - 1 if model.windowed else 0  # a window model starts from block_size boundary tokens
        self.history = torch.full((batch_size, pad), BOUNDARY, dtype=torch.long, device=device)

    def select(self, rows):
        self.history = self.history[rows]
        self.cls = None if self.cls is None else self.cls[rows]

    def __call__(self, tokens):  # (B,) -> (B, V)
        self.history = torch.cat([self.history, tokens[:, None]], dim=1)
        if self.context is not None:  # None: the model reads its whole history (recurrent models)
            self.history = self.history[:, -self.context :]
        if self.model.windowed:
            return self.model(self.history)[0]
        extra = () if self.cls is None else (None, self.cls)
        return self.model(self.history, *extra)[0][:, -1]


class CachedStep:
    """Next-token logits from the model's per-layer queues: one step per layer (Paine et al. 2016)."""

    def __init__(self, model, batch_size: int, device, cls=None):
        self.model, self.cache = model, model.init_cache(batch_size, cls)

    def select(self, rows):
        self.cache.select(rows)

    def __call__(self, tokens):
        return self.model.step(tokens, self.cache)


def has_cache(model) -> bool:
    return hasattr(model, "init_cache")


def prime(model, vocab: Vocab, n: int, prefix: str, cls: int | None = None, cached: bool = True):
    """The start of generation for n words: (step, logits (n, V) for the character after prefix, the prefix's
    log-probability (n,))."""
    device = device_of(model)
    classes = None if cls is None else torch.full((n,), cls, dtype=torch.long, device=device)
    step = (CachedStep if cached and has_cache(model) else NaiveStep)(model, n, device, classes)
    score = torch.zeros(n, dtype=torch.float64, device=device)
    logits = step(torch.full((n,), BOUNDARY, dtype=torch.long, device=device))  # (n, V)
    for token in vocab.encode(prefix):
        score += F.log_softmax(logits.double(), dim=-1)[:, token]
        logits = step(torch.full((n,), token, dtype=torch.long, device=device))
    return step, logits, score


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
    cls: int | None = None,
    cached: bool = True,
    logprobs: bool = False,
) -> list[str] | list[tuple[str, float]]:
    """n words, generated as one batch; each is prefix + the characters up to its own end token.

    Models with a cache generate with it unless cached=False; the others run naively over their context.
    A word that reaches max_len characters without an end token is cut there. With logprobs, each word comes
    with its log-probability under the model (temperature 1, no top-k): its characters, prefix included, and
    its end token.
    """
    check_sampling_options(vocab, temperature, prefix, top_k)
    top_k = None if top_k is None else max(1, min(top_k, vocab.size))
    device = device_of(model)
    was_training = model.training
    model.eval()
    step, logits, score = prime(model, vocab, n, prefix, cls, cached)
    out = torch.full((n, max(max_len - len(prefix), 0)), BOUNDARY, dtype=torch.long, device=device)  # (n, L)
    rows = torch.arange(n, device=device)  # the words still being generated: row b of the batch is word rows[b]
    for t in range(out.shape[1]):
        ix = next_token(logits, temperature, top_k, generator)[:, 0]  # (B,)
        out[rows, t] = ix
        if logprobs:
            score[rows] += F.log_softmax(logits.double(), dim=-1).gather(1, ix[:, None])[:, 0]
        going = ix != BOUNDARY
        if not going.all():  # words that ended leave the batch
            keep = going.nonzero()[:, 0]
            if len(keep) == 0:
                break
            rows, ix = rows[keep], ix[keep]
            step.select(keep)
        if t + 1 < out.shape[1]:
            logits = step(ix)
    model.train(was_training)
    words = [prefix + word for word in vocab.decode_rows(out)] if prefix else vocab.decode_rows(out)
    return list(zip(words, score.tolist())) if logprobs else words


@torch.no_grad()
def next_char_probs(model, vocab: Vocab, prefix: str = "", *, cls: int | None = None) -> list[float]:
    """The model's distribution of the character after prefix (index = token; 0 is the end), temperature 1."""
    check_sampling_options(vocab, 1.0, prefix)
    was_training = model.training
    model.eval()
    _, logits, _ = prime(model, vocab, 1, prefix, cls)
    model.train(was_training)
    return F.softmax(logits[0].double(), dim=-1).tolist()


@dataclass
class Drawn:
    """What draw() gives: the names asked for (words, or (word, logprob) pairs), every name generated on the way,
    and the novelty rate of those."""

    names: list
    drawn: list
    novelty: float


def draw(model, vocab: Vocab, n: int, known, *, novel_only: bool = False, rounds: int = 100, deadline: float | None = None,
         **options) -> Drawn:
    """n words, drawing again while novel_only leaves fewer (at most `rounds` batches, and none begun after
    `deadline`, a time.monotonic() value). Items are words, or (word, logprob) with logprobs=True."""
    SAMPLING["n"].check("n", n)
    shown, drawn = [], []
    for _ in range(rounds):
        batch = generate(model, vocab, n, **options)
        drawn += batch
        shown += [w for w in batch if not (novel_only and (w[0] if isinstance(w, tuple) else w) in known)]
        if len(shown) >= n or (deadline is not None and time.monotonic() > deadline):
            break
    words = [w[0] if isinstance(w, tuple) else w for w in drawn]
    return Drawn(shown[:n], drawn, novelty(words, known))


def novelty(samples, known) -> float:
    """The share of samples that are not in known (the items the model was trained from)."""
    if not samples:
        return float("nan")
    known = known if isinstance(known, (set, frozenset)) else set(known)
    return sum(s not in known for s in samples) / len(samples)


def default_max_len(items, prefix: str = "") -> int:
    """Words are cut at twice the longest item: long enough for any plausible word, short enough to end."""
    return 2 * max(map(len, items)) + len(prefix)
