"""Drawing names that pass filters: n names not in the list (novel only), not excluded, each once, of the asked
lengths, drawn again as needed, bounded in rounds and in time; given whole, or to a callback as they are found,
so that the memory a request holds does not grow with n."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from makemore.data import Vocab
from makemore.sample import MAX_LEN, Job, Options, generate_jobs

ROUNDS = 100  # draw() generates at most this many batches for one request
SECONDS = 5.0  # ... and begins none after this long


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


@dataclass
class Sampler:
    """One request for n names that pass its filters: not in known (novel_only), not in exclude, each once
    (unique), ended within max_len. It gives jobs, one round at a time, until it has n names, or has run
    `rounds` rounds, or `seconds` have passed since the first (however long a large first round took); one
    mechanism for every filter. With on_names, each round's names go to on_names(list) and are not kept: only
    counts are (and the names given, for unique)."""

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
    deadline: float | None = field(default=None, init=False)  # time.monotonic() when the first round ended, + seconds
    shown: list = field(default_factory=list)
    drawn: list = field(default_factory=list)
    seen: set = field(default_factory=set)  # with unique: the names given
    found: int = 0
    novel_found: int = 0
    ended: int = 0  # drawn names that ended within max_len
    novel_ended: int = 0
    tried: int = 0  # rows drawn, those that did not end within max_len too
    done_rounds: int = 0

    def next_job(self) -> Job | None:
        missing = self.n - self.found
        if missing <= 0 or self.done_rounds >= self.rounds or (
                self.deadline is not None and time.monotonic() > self.deadline):
            return None
        if not self.done_rounds:  # with filters, a margin: a round more costs a batch's wait in the server
            filtered = self.novel_only or self.unique or self.exclude
            rows = math.ceil(1.5 * self.n) + 8 if filtered else self.n
        else:  # as many again as the share that passed says are needed, and a margin
            rate = max(self.found / self.tried, 0.05)
            rows = min(math.ceil(1.2 * missing / rate) + 8, max(self.n, 10_000))
        return Job(rows, self.options, self.generator)

    def take(self, results: list):
        self.done_rounds += 1
        if self.done_rounds == 1 and self.seconds is not None:
            self.deadline = time.monotonic() + self.seconds
        self.tried += len(results)
        passed = []
        for result in results:
            if result is None:
                continue
            word, new = result[0], result[0] not in self.known
            self.ended += 1
            self.novel_ended += new
            if self.on_names is None:
                self.drawn.append(result)
            if (self.novel_only and not new) or word in self.exclude or self.found >= self.n:
                continue
            if self.unique:
                if word in self.seen:
                    continue
                self.seen.add(word)
            self.found += 1
            self.novel_found += new
            passed.append(result if self.logprobs else word)
        if self.on_names is None:
            self.shown += passed
        elif passed:
            self.on_names(passed)

    def result(self) -> Drawn:
        drawn = self.drawn if self.logprobs else [w for w, _ in self.drawn]
        novelty = self.novel_ended / self.ended if self.ended else float("nan")
        return Drawn(self.shown, drawn, novelty, self.found == self.n, self.done_rounds, self.found,
                     self.novel_found, self.ended)


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
