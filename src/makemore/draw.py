"""Drawing names that pass filters: n names not in the list (novel only), not excluded, each once, far enough
from the list (min_distance), written as the list writes (style.py), of the asked lengths and shape (a pattern,
a suffix, substrings), drawn again as needed, bounded in rounds and in time; given whole, or to a callback as
they are found, so that the memory a request holds does not grow with n.

Drawing and rejecting is exact: the names come from the model's distribution conditioned on the filters. A shape
too rare for that (fewer matches in the first round than GUIDE_ROWS more rows would find) is then drawn guided by
its automaton (sample.Shapes: only tokens a match can follow) and corrected toward the conditional distribution
by importance resampling: each round's candidates, weighted by their importance weights, are resampled into
names. That is exact as the candidates grow; the guidance (how many candidates, their effective number) is
reported in Drawn.guidance."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from makemore.data import Vocab
from makemore.sample import MAX_LEN, Job, Options, generate_jobs

ROUNDS = 100  # draw() generates at most this many batches for one request
SECONDS = 5.0  # ... and begins none after this long
GUIDE_RATE = 0.002  # a shape that fewer rows than this give (as high as the rounds so far allow) is drawn guided
SHAPE_ROWS = 2_000  # a shape's first round has at least these rows: enough to see a rate of 1 in a thousand
MAX_CANDIDATES = 20_000  # a guided round's rows
MIN_EFFECTIVE = 10  # fewer effective candidates: the shape's probability, a mean weight that rests on a handful of
# rows, is not given (on 2, one shape's estimate was 9.1e-09 in one run and 4.8e-04 in another)


@dataclass
class Drawn:
    """What draw() gives: the names asked for (words, or (word, logprob) pairs; none where a callback took them
    as they were found), every name generated on the way that ended within max_len (none when streamed), the
    novelty rate of those, whether all n were found, and the counts behind them."""

    names: list
    drawn: list
    novelty: float
    complete: bool = True
    rounds: int = 0
    found: int = 0  # names that passed the filters: len(names), unless streamed
    novel_found: int = 0  # of those, not in the list
    tried: int = 0  # names drawn that ended within max_len: len(drawn), unless streamed
    guidance: dict | None = None  # a shape's: drawn and rejected ("exact"), or guided and resampled (see the module)
    rows: int = 0  # rows generated in all: those that did not end within max_len (or fit the shape) too
    unstyled: int = 0  # names drawn that the list's style refused (drawn again)


@dataclass
class Sampler:
    """One request for n names that pass its filters: not in known (novel_only), not in exclude, each once
    (unique), ended within max_len and written as the list writes (style). It gives jobs, one round at a time,
    until it has n names, or has run `rounds` rounds, or `seconds` have passed since the first (however long a
    large first round took); one mechanism for every filter. With on_names, each round's names go to
    on_names(list) and are not kept: only counts are (and the names given, for unique)."""

    n: int
    options: Options
    generator: torch.Generator | None
    known: set = field(default_factory=set)
    novel_only: bool = False
    exclude: frozenset = frozenset()
    unique: bool = False
    rounds: int = ROUNDS
    seconds: float | None = None  # no round starts more than this long after the first ended (None: no bound)
    logprobs: bool = False
    on_names: Callable | None = None
    far: Callable | None = None  # far(word): whether the word is far enough from the list (min_distance)
    style: Callable | None = None  # style(word): whether the word is written as the list writes; a name that is not
    # is a row drawn, as one that ends past max_len or misses the shape is: not among the names drawn, nor in novelty
    guide: bool | None = None  # a shape drawn guided from the first round (True), or as its rate says (None)
    deadline: float | None = field(default=None, init=False)  # time.monotonic() when the first round ended, + seconds
    shown: list = field(default_factory=list)
    drawn: list = field(default_factory=list)
    seen: set = field(default_factory=set)  # with unique: the names given
    found: int = 0
    novel_found: int = 0
    ended: int = 0  # drawn names that ended within max_len
    novel_ended: int = 0
    tried: int = 0  # rows drawn, those that did not end within max_len too
    unstyled: int = 0  # names that ended within max_len and that the style refused
    done_rounds: int = 0
    guided: dict | None = field(default=None, init=False)  # once drawing is guided: its figures so far
    pool: list = field(default_factory=list, init=False)  # guided candidates not yet resampled: (result, log weight)
    job: Job | None = field(default=None, init=False)  # the round under way

    def next_job(self) -> Job | None:
        missing = self.n - self.found
        if missing <= 0 or self.done_rounds >= self.rounds or (
                self.deadline is not None and time.monotonic() > self.deadline):
            return None
        # the share of rows that gives a name, as high as what was seen allows: none in 2,000 rows is not a rate of
        # 0, but of at most about 3 in 2,000 (the rule of three)
        rate = (self.found + 3) / (self.tried + 3) if self.tried else None
        rare = self.guide or (rate is not None and rate < GUIDE_RATE)
        if self.options.shaped and self.guided is None and rare:
            self.guided = {"acceptance": self.found / self.tried if self.tried else None, "found": self.found,
                           "tried": self.tried, "candidates": 0, "effective": 0.0, "rows": 0, "weight": 0.0}
        if self.guided is not None:  # candidates to resample from: ten for each name still missing, so that the
            rows = min(max(10 * missing, 256), MAX_CANDIDATES)  # names resampled are nearly independent draws
            self.job = Job(rows, dataclasses.replace(self.options, guided=True), self.generator, log_weights=[])
        elif not self.done_rounds:  # with filters, a margin: a round more costs a batch's wait in the server
            filtered = self.novel_only or self.unique or self.exclude or self.far or self.options.shaped
            # the style refuses 0-15 names in 100 on the lists measured: a small margin, and a second round if need be
            margin = 1.5 if filtered else 1.05 if self.style else None
            rows = math.ceil(margin * self.n) + 8 if margin else self.n
            self.job = Job(max(rows, SHAPE_ROWS) if self.options.shaped else rows, self.options, self.generator)
        else:  # as many again as the share that passed says are needed, and a margin
            rows = min(math.ceil(1.2 * missing / rate) + 8, max(self.n, 10_000))
            self.job = Job(rows, self.options, self.generator)
        return self.job

    def take(self, results: list):
        self.done_rounds += 1
        if self.done_rounds == 1 and self.seconds is not None:
            self.deadline = time.monotonic() + self.seconds
        self.tried += len(results)
        weights = self.job.log_weights if self.job is not None else None  # a guided round's
        if self.style is not None:  # a name not written as the list writes is a row that gave no name
            refused = [r is not None and not self.style(r[0]) for r in results]
            results = [None if no else r for r, no in zip(results, refused)]
            self.unstyled += sum(refused)
        passed = []
        for i, result in enumerate(results):
            if result is None:
                continue
            word, new = result[0], result[0] not in self.known
            self.ended += 1
            self.novel_ended += new
            if self.on_names is None:
                self.drawn.append(result)
            if (self.novel_only and not new) or word in self.exclude or (self.far and not self.far(word)):
                continue
            if weights is not None:
                self.pool.append((result, weights[i]))
            elif self.accept(word):
                passed.append(result if self.logprobs else word)
        self.give(passed)
        if weights is not None:
            self.guided["rows"] += len(results)  # the estimate of the shape's probability counts every row drawn
            self.guided["weight"] += sum(math.exp(w) for r, w in zip(results, weights) if r is not None)
            if self.pool:
                self.resample()

    def give(self, passed: list):
        if self.on_names is None:
            self.shown += passed
        elif passed:
            self.on_names(passed)

    def accept(self, word: str) -> bool:
        """Whether a name that passed the filters is one more of the n (each once, with unique)."""
        if self.found >= self.n or (self.unique and word in self.seen):
            return False
        if self.unique:
            self.seen.add(word)
        self.found += 1
        self.novel_found += word not in self.known
        return True

    @staticmethod
    def effective(pool: list) -> float:
        """Kish's effective number of the pool's candidates: (sum w)^2 / sum w^2."""
        log_w = torch.tensor([w for _, w in pool], dtype=torch.float64)
        w = (log_w - log_w.max()).exp()
        return (w.sum() ** 2 / (w**2).sum()).item()

    def resample(self):
        """The missing names from the pool, drawn with replacement in proportion to their importance weights:
        the names of the conditional distribution, as the candidates grow; the pool is then spent."""
        log_w = torch.tensor([w for _, w in self.pool], dtype=torch.float64)
        cdf = (log_w - log_w.max()).exp().cumsum(0)
        self.guided["candidates"] += len(self.pool)
        self.guided["effective"] += self.effective(self.pool)
        device = self.generator.device if self.generator is not None else "cpu"
        u = torch.rand(self.n - self.found, generator=self.generator, device=device).cpu().double()
        picks = torch.searchsorted(cdf / cdf[-1], u).clamp(max=len(cdf) - 1).tolist()
        chosen = [self.pool[i][0] for i in picks]
        self.pool = []
        self.give([r if self.logprobs else r[0] for r in chosen if self.accept(r[0])])

    def result(self) -> Drawn:
        if self.pool and self.found < self.n:  # out of rounds or time: what the pool has, however few
            self.resample()
        drawn = self.drawn if self.logprobs else [w for w, _ in self.drawn]
        novelty = self.novel_ended / self.ended if self.ended else float("nan")
        guidance = None
        if self.options.shaped and self.guided is None:
            guidance = {"mode": "exact", "acceptance": self.found / self.tried if self.tried else None}
        elif self.options.shaped:  # the shape's probability, estimated as the mean importance weight of a row
            g = self.guided
            guidance = {"mode": "guided", "corrected": "particles and importance resampling",
                        "acceptance": g["acceptance"], "found": g["found"], "tried": g["tried"],
                        "candidates": g["candidates"],
                        "effective": round(g["effective"], 1),
                        "probability": g["weight"] / g["rows"] if g["rows"] and g["effective"] >= MIN_EFFECTIVE
                        else None}
        return Drawn(self.shown, drawn, novelty, self.found == self.n, self.done_rounds, self.found,
                     self.novel_found, self.ended, guidance, self.tried, self.unstyled)


def draw(model, vocab: Vocab, sampler: Sampler, cached: bool = True) -> Drawn:
    """A sampler's names, drawn alone: a batch per round."""
    while (job := sampler.next_job()) is not None:
        sampler.take(generate_jobs(model, vocab, [job], cached, sampler.logprobs)[0])
    return sampler.result()


def novelty(samples, known) -> float:
    """The share of samples that are not in known (the items the model was trained from)."""
    if not samples:
        return float("nan")
    known = known if isinstance(known, (set, frozenset)) else set(known)
    return sum(s not in known for s in samples) / len(samples)


def default_max_len(longest: int, prefix: str = "") -> int:
    """Names are at most twice the longest item (longest characters), and never over MAX_LEN: long enough for any
    plausible word, short enough to end, and bounded whatever the list holds."""
    return min(2 * longest + len(prefix), MAX_LEN)
