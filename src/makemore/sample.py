"""Generation: the sampling options, the model's step (cached, naive, shared), and decoding.

Generation runs jobs — each some rows with its own options (temperature, top-k, top-p, prefix, class, lengths)
and its own random generator — in one batch, every word stopping at its own end token. A job's random draws
are the same whatever else is in the batch, so a request gives the same names alone or batched with others.
draw.py asks for n names that pass filters, drawing again as needed; score.py gives given words' likelihood.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from makemore.data import BOUNDARY, Vocab
from makemore.errors import ConfigError
from makemore.fields import Field
from makemore.lists import composed
from makemore.models import device_of
from makemore.models.base import evaluating
from makemore.pattern import Automaton, Shapes, shape_of

MAX_N = 1_000_000  # names one request may ask for
MAX_LEN = 1_000  # characters a name may have, whatever the list holds: every generation is bounded
SAMPLING = {  # the sampling options a user gives, checked here and made into flags by the command line
    "n": Field(int, "how many names", low=0, high=MAX_N, high_inclusive=True),
    "temperature": Field(float, "below 1: likelier characters; above 1: more surprising ones", low=0, high=100,
                         high_inclusive=True),
    "top_k": Field(int, "sample among the k likeliest characters (clamped to the vocabulary)", low=0),
    "top_p": Field(float, "sample among the likeliest characters that make up this share of the probability "
                          "(nucleus sampling), after top_k", low=0, high=1, high_inclusive=True),
    "prefix": Field(str, "every name starts with this"),
    "seed": Field(int, "for repeatable output", low=0, low_inclusive=True, high=2**63 - 1, high_inclusive=True),
    "min_len": Field(int, "names have at least this many characters (the prefix's included; default 1: no empty "
                          "name)", low=0, low_inclusive=True, high=MAX_LEN, high_inclusive=True),
    "max_len": Field(int, "names have at most this many characters; a longer one is drawn again, not cut (default: "
                          f"twice the longest item, at most {MAX_LEN:,})", low=0, high=MAX_LEN, high_inclusive=True),
    "seconds": Field(float, "draw again for names the filters leave out for at most this long", low=0, high=3600,
                     high_inclusive=True),
    "pattern": Field(str, "a regular expression (Python's syntax) that the whole name matches"),
    "ends_with": Field(str, "every name ends with this"),
    "contains": Field(str, "every name contains this (give it several times for several)"),
    "min_distance": Field(int, "every name is at least this many edits (insertions, deletions, substitutions) from "
                               "every item of the list and of the excluded names", low=0, low_inclusive=True, high=3,
                         high_inclusive=True),
}
MAX_ROWS = 20_000  # rows decoded at once; more are decoded in turn (a Transformer's cache is about 150 KB a row)


@dataclass(frozen=True)
class Options:
    """How one request samples. max_len None: no limit but the caller's (draw() gives a default)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    prefix: str = ""
    cls: int | None = None
    min_len: int = 0
    max_len: int | None = None
    pattern: str | None = None  # a regular expression the whole name matches
    ends_with: str = ""
    contains: tuple = ()  # substrings, each somewhere in the name
    guided: bool = False  # draw only tokens a match can follow (see Shapes); else a name that cannot match is dropped
    automaton: Automaton | None = dataclasses.field(default=None, compare=False, repr=False)  # of the shape, by check

    @property
    def shaped(self) -> bool:
        return bool(self.pattern or self.ends_with or self.contains)

    def check(self, vocab: Vocab) -> Options:
        names = ("temperature", "top_k", "top_p", "prefix", "min_len", "max_len", "pattern", "ends_with")
        for name, value in [(name, getattr(self, name)) for name in names] + [("contains", t) for t in self.contains]:
            if value is not None:
                SAMPLING[name].check(name, value)
        texts = dict(prefix=composed(self.prefix), pattern=composed(self.pattern), ends_with=composed(self.ends_with),
                     contains=tuple(map(composed, self.contains)))  # composed, as a list's items are read
        if len(prefix := texts["prefix"]) > MAX_LEN:
            raise ConfigError("prefix", f"{len(prefix):,} characters; at most {MAX_LEN:,}")
        if vocab.unknown(prefix):
            raise ConfigError("prefix", f"character {vocab.unknown(prefix)[0]!r} is not in the model's vocabulary")
        if self.max_len is not None and self.max_len < max(self.min_len, len(prefix)):
            raise ConfigError("max_len", f"{self.max_len} is below {{min_len}} ({self.min_len}) or the prefix's "
                                         f"length ({len(prefix)})", mentions=("min_len",))
        shaped = self.shaped and self.automaton is None
        automaton = shape_of(vocab, texts["pattern"], texts["ends_with"], texts["contains"]) if shaped else self.automaton
        return dataclasses.replace(self, **texts, automaton=automaton,  # top_k: more than the vocabulary is all of it
                                   top_k=None if self.top_k is None else min(self.top_k, vocab.size))


@dataclass
class Job:
    """rows words sampled with options and generator (None: torch's global one)."""

    rows: int
    options: Options
    generator: torch.Generator | None = None
    log_weights: list | None = None  # guided: each row's log importance weight, appended as the rows are decoded


def next_token(logits, temperature, top_k=None, generator=None, *, top_p=None, u=None):
    """Sample one token per row of logits (B, V) -> (B, 1). temperature is a number or per row (B, 1); top_k and
    top_p are None, a number, or per row (B, 1) with no limit where top_k >= V or top_p is nan. u: a uniform
    draw in [0, 1) per row (B, 1), else drawn from generator."""
    return draw_tokens(sampling_logits(logits, temperature, top_k, top_p), generator, u)


def sampling_logits(logits, temperature, top_k=None, top_p=None):
    """The distribution each row draws from, as logits (B, V): temperature, then top-k, then top-p."""
    # the max first: a temperature near 0 then gives 0 and -inf (argmax), never inf - inf
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
    V = logits.shape[-1]
    if isinstance(top_k, int) and top_k < V:
        kth = torch.topk(logits, top_k, dim=-1).values[:, [-1]]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    elif isinstance(top_k, torch.Tensor):
        limited = top_k < V  # (B, 1): the other rows keep every character
        k = int(top_k.masked_fill(~limited, 1).max())  # the largest k of a limited row: top-k of it, not a sort
        kth = torch.topk(logits, k, dim=-1).values.gather(1, top_k.clamp(1, k) - 1)  # (B, 1)
        logits = logits.masked_fill((logits < kth) & limited, float("-inf"))
    if top_p is not None:
        p = torch.as_tensor(top_p, dtype=logits.dtype, device=logits.device).reshape(-1, 1)  # (B, 1) or (1, 1)
        ordered = logits.sort(dim=-1, descending=True).values
        probs = F.softmax(ordered, dim=-1)
        kept = ((probs.cumsum(dim=-1) - probs) < p).sum(dim=-1, keepdim=True)  # the fewest reaching p, at least 1
        least = ordered.gather(1, kept.clamp(min=1) - 1)
        logits = logits.masked_fill((logits < least) & ~p.isnan(), float("-inf"))
    return logits


def draw_tokens(logits, generator=None, u=None):
    """One token per row of logits (B, V) -> (B, 1), by the inverse CDF."""
    cdf = F.softmax(logits, dim=-1).cumsum(dim=-1)  # (B, V)
    # inverse-CDF sampling: one uniform per row (torch.multinomial draws one exponential per row and token)
    if u is None:
        u = torch.rand((cdf.shape[0], 1), generator=generator, device=cdf.device)
    return (cdf < u * cdf[:, -1:]).sum(dim=-1, keepdim=True)  # (B, 1); u < 1 keeps it below V


# ----------------------------------------------------------------------------- a step of the model


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
    """Next-token logits from the model's per-layer state: one step per layer (Paine et al. 2016), one cell
    update for recurrent models, one position's keys and values for the Transformer."""

    def __init__(self, model, batch_size: int, device, cls=None):
        self.model, self.cache = model, model.init_cache(batch_size, cls)

    def select(self, rows):
        self.cache.select(rows)

    def __call__(self, tokens):
        return self.model.step(tokens, self.cache)


class MixtureStep:
    """An ensemble's next-token log-probabilities: each member steps as it would alone (its own cache, or its
    window), and the ensemble mixes their distributions."""

    def __init__(self, model, batch_size: int, device, cls=None):
        self.model, self.steps = model, [make_step(m, batch_size, None) for m in model.members]

    def select(self, rows):
        for step in self.steps:
            step.select(rows)

    def __call__(self, tokens):
        return self.model.mix([step(tokens) for step in self.steps])


def has_cache(model) -> bool:  # an n-gram too large for its automaton is not .cached: it reads its windows
    return getattr(model, "cached", hasattr(model, "init_cache")) or hasattr(model, "members")


def make_step(model, n: int, cls: torch.Tensor | None, cached: bool = True):
    if cached and hasattr(model, "members"):
        return MixtureStep(model, n, device_of(model), cls)
    return (CachedStep if cached and has_cache(model) else NaiveStep)(model, n, device_of(model), cls)


def longest_word(model, max_len: int) -> int:
    """max_len, within what the model can write: a Transformer sees at most block_size positions."""
    limit = getattr(model, "longest_word", None)
    return max_len if limit is None else min(max_len, limit)


class SharedStep:
    """A step that runs the model once per distinct history. Rows with the same class and the same characters so
    far have the same state, and at the start of words they are many: a batch of thousands has one history, then
    at most V, then a few hundred. A row's history is a number (its class, then a base-V digit a character); the
    sharing stops for good once the distinct histories are over half the rows, or their numbers could pass 63
    bits. While it shares, the step keeps one row per history (inverse: each row's), and is then spread."""

    def __init__(self, step, cls: torch.Tensor | None, B: int, V: int, device):
        self.step, self.V = step, V
        self.key = torch.zeros(B, dtype=torch.long, device=device) if cls is None else cls.long()  # None: stopped
        self.bound = 1 + (0 if cls is None or not B else int(cls.max()))  # every key is below it
        self.inverse = None  # while shared: each row's row of the step; None: the step has the batch's rows

    def select(self, rows):
        if self.inverse is None:
            self.step.select(rows)
        else:
            self.inverse = self.inverse[rows]
        if self.key is not None:
            self.key = self.key[rows]

    def __call__(self, tokens):  # (B,) -> (B, V)
        if self.key is None:
            return self.step(tokens)
        self.key, self.bound = self.key * self.V + tokens, self.bound * self.V
        distinct, inverse = torch.unique(self.key, return_inverse=True)
        shared = 2 * len(distinct) <= len(tokens)
        if not shared or self.bound * self.V >= 2**63:
            self.key = None
        if not shared:
            self.spread()
            return self.step(tokens)
        first = torch.full_like(distinct, len(tokens)).scatter_reduce_(
            0, inverse, torch.arange(len(tokens), device=tokens.device), "amin")  # a row of each history
        self.step.select(first if self.inverse is None else self.inverse[first])
        logits = self.step(tokens[first])
        self.inverse = inverse
        if self.key is None:
            self.spread()
        return logits.index_select(0, inverse)

    def spread(self):  # the step's rows made the batch's, one per row
        if self.inverse is not None:
            self.step.select(self.inverse)
            self.inverse = None


# ----------------------------------------------------------------------------- generation


def per_row(jobs, job_of, value, fill):
    """A job option per row of the batch (B, 1), fill where a job leaves it None; None if every job does."""
    values = [value(j.options) for j in jobs]
    if all(v is None for v in values):
        return None
    return torch.tensor([fill if v is None else v for v in values], device=job_of.device)[job_of].reshape(-1, 1)


def batches_of(jobs: list[Job]) -> list[list[tuple[int, Job]]]:
    """The jobs, in order, packed into batches of at most MAX_ROWS rows, each job as (its index, a Job). A job
    is never split across batches, so that it gives the same words whatever it is batched with, unless it alone
    has more rows: then it is cut into batches of MAX_ROWS, in turn, its generator going on from one to the next."""
    batches, current, rows = [], [], 0
    for i, job in enumerate(jobs):
        if current and rows + job.rows > MAX_ROWS:
            batches.append(current)
            current, rows = [], 0
        if job.rows > MAX_ROWS:
            batches += [[(i, dataclasses.replace(job, rows=min(MAX_ROWS, job.rows - start)))]
                        for start in range(0, job.rows, MAX_ROWS)]
            continue
        current.append((i, job))
        rows += job.rows
    return batches + [current] if current else batches


def generate_jobs(model, vocab: Vocab, jobs: list[Job], cached: bool = True, logprobs: bool = False) -> list[list]:
    """Every job's rows, decoded in batches of at most MAX_ROWS rows (batches_of); per job, a (word,
    log-probability) per row, or None for a row that reached the job's max_len characters without ending (it is
    dropped, not cut). The log-probability (None unless logprobs) is the model's — temperature 1, no top-k, top-p
    or length limit — of the word's characters, prefix included, and its end. Jobs come with checked options and a
    max_len."""
    results = [[] for _ in jobs]
    for batch in batches_of(jobs):
        for (i, _), rows in zip(batch, decode(model, vocab, [job for _, job in batch], cached, logprobs)):
            results[i] += rows
    return results


@torch.no_grad()
def decode(model, vocab: Vocab, jobs: list[Job], cached: bool, logprobs: bool) -> list[list]:
    """generate_jobs' rows of jobs decoded as one batch, the model in eval mode."""
    with evaluating(model):
        return decode_batch(model, vocab, jobs, cached, logprobs)


def decode_batch(model, vocab: Vocab, jobs: list[Job], cached: bool, logprobs: bool) -> list[list]:
    device = device_of(model)
    job_of = torch.repeat_interleave(torch.arange(len(jobs)), torch.tensor([j.rows for j in jobs])).to(device)  # (B,)
    B, V = len(job_of), vocab.size
    max_lens = [longest_word(model, j.options.max_len) for j in jobs]
    steps = max(max_lens, default=0) + 1  # the last step can only end a word
    temperature = per_row(jobs, job_of, lambda o: o.temperature, 1.0)
    top_k = per_row(jobs, job_of, lambda o: o.top_k, V)
    top_p = per_row(jobs, job_of, lambda o: o.top_p, math.nan)
    min_len = torch.tensor([j.options.min_len for j in jobs], device=device)[job_of]
    max_len = torch.tensor(max_lens, device=device)[job_of]
    prefixes = [vocab.encode(j.options.prefix) for j in jobs]
    width = max(map(len, prefixes), default=0)
    forced = torch.tensor([p + [BOUNDARY] * (width - len(p)) for p in prefixes], dtype=torch.long, device=device)
    forced, prefix_len = forced[job_of], torch.tensor(list(map(len, prefixes)), device=device)[job_of]
    classes = [j.options.cls for j in jobs]
    cls = None if all(c is None for c in classes) else torch.tensor(classes, device=device)[job_of]
    step = make_step(model, B, cls, cached)
    if cached:  # naive generation, the reference, steps every row
        step = SharedStep(step, cls, B, V, device)
    shapes = Shapes.of(jobs, job_of, V) if any(j.options.shaped for j in jobs) else None
    out = torch.full((B, steps), BOUNDARY, dtype=torch.long, device=device)  # (B, L)
    score = torch.zeros(B, dtype=torch.float64, device=device)
    too_long = torch.zeros(B, dtype=torch.bool, device=device)
    rows = torch.arange(B, device=device)  # the words still being written: row b of the batch is word rows[b]
    end = torch.arange(V, device=device) == BOUNDARY
    counts = [j.rows for j in jobs]  # rows still being written, per job; a job's rows stay together, in order
    logits = step(torch.full((B,), BOUNDARY, dtype=torch.long, device=device)) if B else None
    for t in range(steps if B else 0):
        if t < width and all(t < len(p) for p, c in zip(prefixes, counts) if c):
            ix = forced[rows, t]  # every word is still in its prefix
        else:
            draws = [torch.zeros((c, 1), device=device) if t < len(p) else  # forced: no draw
                     torch.rand((c, 1), generator=job.generator, device=device)
                     for job, p, c in zip(jobs, prefixes, counts) if c]
            masked = logits.masked_fill((t < min_len[rows])[:, None] & end, float("-inf")) if any(
                j.options.min_len > t for j in jobs) else logits
            drawn = sampling_logits(masked, temperature[rows], None if top_k is None else top_k[rows],
                                    None if top_p is None else top_p[rows])
            if shapes is not None:
                drawn = shapes.steer(rows, drawn, t >= prefix_len[rows], max_len[rows] - t - 1)
            ix = draw_tokens(drawn, u=torch.cat(draws))[:, 0]
            if t < width:
                ix = torch.where(t < prefix_len[rows], forced[rows, t], ix)
        out[rows, t] = ix
        failed = shapes.advance(rows, ix) if shapes is not None else None
        if logprobs:
            score[rows] += F.log_softmax(logits.double(), dim=-1).gather(1, ix[:, None])[:, 0]
        going = ix != BOUNDARY
        over = going & (t >= max_len[rows])  # a character past max_len: the word is dropped
        too_long[rows[over]] = True
        keep = (going & ~over & (True if failed is None else ~failed)).nonzero()[:, 0]
        if len(keep) < len(rows):  # words that ended leave the batch
            if len(keep) == 0:
                break
            rows, ix = rows[keep], ix[keep]
            step.select(keep)
            counts = torch.bincount(job_of[rows], minlength=len(jobs)).tolist() if len(jobs) > 1 else [len(rows)]
        if shapes is not None and t + 1 < steps:  # guided rows of uneven weights drawn again (a particle method)
            perm = shapes.resample(rows, job_of, [j.generator for j in jobs])
            if perm is not None:
                out[rows], score[rows], ix = out[rows[perm]], score[rows[perm]], ix[perm]
                step.select(perm)
        if t + 1 < steps:
            logits = step(ix)
    words = vocab.decode_rows(out) if B else []
    scores = score.tolist() if logprobs else [None] * B
    lengths = (out != BOUNDARY).cumprod(dim=1).sum(dim=1)  # (B,)
    short = lengths < min_len  # only a model gone wrong ends early
    last = out.gather(1, (lengths - 1).clamp(min=0)[:, None])[:, 0]
    spaced = (lengths > 0) & vocab.spaces.to(device)[last]  # whitespace at the end: no list holds such an item
    dropped = (too_long | short | spaced | (False if shapes is None else shapes.failed)).tolist()
    results, start = [], 0
    for job in jobs:
        results.append([None if dropped[b] else (words[b], scores[b]) for b in range(start, start + job.rows)])
        if job.log_weights is not None:
            job.log_weights += shapes.log_weight[start : start + job.rows].tolist()
        start += job.rows
    return results


def generate(model, vocab: Vocab, n: int, *, max_len: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, prefix: str = "", generator: torch.Generator | None = None,
             cls: int | None = None, cached: bool = True, logprobs: bool = False, min_len: int = 0) -> list:
    """n words generated as one batch, less those that reached max_len characters without ending (dropped, not
    cut); with logprobs, each with its log-probability under the model. Models with a cache generate with it
    unless cached=False; the others run naively over their context."""
    options = Options(temperature, top_k, top_p, prefix, cls, min_len, max_len).check(vocab)
    words = [w for w in generate_jobs(model, vocab, [Job(n, options, generator)], cached, logprobs)[0] if w]
    return words if logprobs else [w for w, _ in words]
