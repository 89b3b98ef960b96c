"""The default recipe, auto: what it reads of a list (ListStats), the rule that sizes a network for it (AUTO),
the n-gram mixed with it (ngram_context_for), and the run it makes of a list (resolve_auto)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from makemore.config import RunSpec, on_gpu, resolve_run
from makemore.data import Corpus, build_windows
from makemore.models.interpolated import starting_discount
from makemore.models.ngram import choose_context, longest_context


@dataclass(frozen=True)
class ListStats:
    """What the auto recipe reads of a list."""

    items: int
    train_items: int  # the lecture's split: 80% of the items
    train_chars: int  # the training split's targets: every character and every end token
    vocab: int
    longest: int
    lengths: tuple = ()  # how many training items have each length (characters and end token): lengths[L]

    @classmethod
    def of(cls, corpus: Corpus) -> ListStats:
        train = corpus.split()[0]
        train = train[0] if corpus.labels is not None else train
        lengths = torch.bincount(torch.tensor([len(w) + 1 for w in train])).tolist()
        return cls(len(corpus.items), len(train), sum(len(w) + 1 for w in train), corpus.vocab.size, corpus.longest,
                   tuple(lengths))

    def positions(self, batch: int) -> float:
        """The positions a training step computes for a batch of batch items drawn at random: each padded to
        the batch's longest, batch x E[longest], as Batches crops them. E[max] = sum over L of
        L (F(L)^b - F(L - 1)^b), F the lengths' distribution."""
        if not self.lengths:  # lengths unknown: every batch as long as the longest item
            return batch * (self.longest + 1)
        cdf = torch.tensor(self.lengths, dtype=torch.float64).cumsum(0) / max(self.train_items, 1)
        below = torch.cat([torch.zeros(1, dtype=torch.float64), cdf[:-1]])
        return batch * (torch.arange(len(cdf)) * (cdf**batch - below**batch)).sum().item()

    def cost(self, batch: int, n_embd: int, n_hidden: int) -> float:
        """A training step's share of a small list's budget (AUTO_SMALL_POSITIONS): its padded positions, each
        weighted by the output layer's share of a GRU position's work, 1 + V / 3(E + H) (3H(E + H) multiply-adds
        in the cell, HV in the head)."""
        return self.positions(batch) * (1 + self.vocab / (3 * (n_embd + n_hidden)))


# The auto rule: a GRU whose width, dropout, batch, lr and epochs follow the training split's characters (its
# targets: characters and end tokens), trained with AdamW on a cosine schedule for that many epochs but on at most
# AUTO_MAX_TARGETS characters, evaluated as often as costs a tenth of the training, keeping the best evaluation
# and stopping after AUTO_PATIENCE without a better one. Measured across list sizes on 2 CPU cores:
# benchmarks/README.md, "auto".
AUTO = [  # (train characters below, n_embd, n_hidden, dropout, batch_size, lr, epochs)
    (4_000, 48, 128, 0.5, 32, 0.004, 40),  # about 300 items or fewer: few words, strong dropout, many short epochs
    (100_000, 64, 192, 0.4, 64, 0.004, 20),
    # names.txt (182,625 characters): val 1.9030, test 1.9069 (192 wide: 1.9062 / 1.9111); since recurrent rows
    # train packed (rnn.Recurrent.recur), 256 wide takes 1.23x the time 192 took padded
    (300_000, 64, 256, 0.3, 64, 0.004, 20),
    # more than about 30,000 items: AUTO_MAX_TARGETS ends it within two or three epochs, too few to overfit:
    # no dropout and a higher lr (english-words and world-places whole, benchmarks/README.md)
    (math.inf, 64, 192, 0.0, 64, 0.008, 20),
]
AUTO_MODEL = "gru+ngram"  # a list conditioned on classes: "gru", whose options are a part of these
AUTO_MAX_TARGETS = 4_800_000  # characters: names' 20 epochs (3.65M) fit; 234,450 words train 2.4 epochs in 1.27x
# the old default's time (the GRU alone at 4M, dropout 0.1; issue "own lists 2" allows 1.3x)
AUTO_PATIENCE = 10
# On a GPU: batches AUTO_GPU_BATCH times larger at lr AUTO_GPU_LR, as many epochs (H100, names: val 1.946-1.954).
AUTO_GPU_BATCH = 4
AUTO_GPU_LR = 0.008
# A list of fewer than AUTO_SMALL_ITEMS items trains on the CPU for at most AUTO_SMALL_POSITIONS padded positions
# (steps x batch x the batch's longest item), each weighted by its share of the output layer: a position costs
# the GRU's 3H(E + H) multiply-adds and the head's HV, so it counts 1 + V / 3(E + H) (1.04 for 27 characters at
# 64 x 192, 2.1 for the 592 of 1,000 Japanese places at 48 x 128). Since rows train packed (43,000 to 62,000 such
# positions a second on one thread, evaluations included), this is at most 26 CPU s on the ladder's lists under
# 10,000 items (benchmarks/README.md; 620,000 unweighted before: 5-19 s, with val 0.005 and test 0.004 higher on
# average). Long items cost their padding: 3,000 Mexican places (16 characters on average, 41 for a batch's
# longest) train for 11.5 epochs where 3,000 names (7 and 11) train for 20, twice (two networks).
AUTO_SMALL_ITEMS = 10_000
AUTO_SMALL_POSITIONS = 1_240_000
# Where a small list's epochs take less than the budget, the rest trains more networks side by side, each kept at
# its own best and mixed (interpolated.Interpolated): as many as the budget holds, at most AUTO_MAX_NETWORKS.
AUTO_MAX_NETWORKS = 8


def auto_recipe(stats: ListStats, gpu: bool = False, ngram_context: int | None = None,
                positions: float | None = AUTO_SMALL_POSITIONS, networks: int | None = None, table=AUTO,
                max_targets: float = AUTO_MAX_TARGETS) -> dict:
    """The default recipe for a list, from its own statistics: a config, as a TOML file gives it. With an n-gram
    context (ngram_context_for: unless the list is conditioned on classes), the GRU is mixed with an n-gram.
    positions: the budget of a small list on the CPU (None: none, as before issue "own lists 2"); networks: how
    many GRUs (None: as many as the budget holds), each with a batch of its own rows; table and max_targets: the
    rule's (another's: the benchmarks' old default)."""
    _, n_embd, n_hidden, dropout, batch, lr, epochs = next(row for row in table if stats.train_chars < row[0])
    if gpu:
        batch, lr = batch * AUTO_GPU_BATCH, AUTO_GPU_LR
    per_item = stats.train_chars / max(stats.train_items, 1)
    steps = max(1, math.ceil(min(epochs * stats.train_items, max_targets / per_item) / batch))
    held = 1  # the networks the budget holds
    if positions and not gpu and stats.items < AUTO_SMALL_ITEMS:
        per_step = stats.cost(batch, n_embd, n_hidden)
        steps = min(steps, max(1, math.ceil(positions / per_step)))
        held = min(AUTO_MAX_NETWORKS, max(1, int(positions // (steps * per_step))))
    options = {"n_embd": n_embd, "n_hidden": n_hidden, "dropout": dropout}
    if ngram_context:
        options["ngram_context"] = ngram_context
        networks = networks or held
        if networks > 1:
            options["networks"] = networks
            batch *= networks
    return {"model": AUTO_MODEL if ngram_context else "gru", "options": options,
            "train": {"steps": steps, "batch_size": batch, "optimizer": "adamw", "lr": lr, "weight_decay": 0.1,
                      "schedule": "cosine", "patience": AUTO_PATIENCE}}


def ngram_context_for(corpus: Corpus, discount: float = 0) -> int:
    """The n-gram context of a network + n-gram model for this list: ngram.choose_context on its split, at the
    discount the n-gram starts with."""
    V, top = corpus.vocab.size, longest_context(corpus.vocab.size)
    train, val = (part[0] if corpus.labels is not None else part for part in corpus.split()[:2])
    return choose_context(build_windows(train, corpus.vocab, top), build_windows(val, corpus.vocab, top), V,
                          starting_discount(discount))[0]


def auto_note(stats: ListStats, spec: RunSpec) -> str:
    """What the auto recipe chose, flags and keywords included, in one line."""
    o, t = spec.options, spec.train
    ngram = f", mixed with a {o['ngram_context'] + 1}-gram" if "ngram_context" in o else ""
    gru = f"{o['networks']} grus" if o.get("networks", 1) > 1 else "gru"
    return (f"auto: {stats.items:,} items, {stats.vocab - 1} characters: {gru} {o['n_hidden']} wide, "
            f"dropout {o['dropout']:g}{ngram}; up to {t.steps:,} steps of {t.batch_size}, patience {t.patience}")


def resolve_auto(corpus: Corpus, given: dict) -> RunSpec:
    """The auto recipe for the list, with the given values (as resolve_run takes them) over it."""
    stats = ListStats.of(corpus)
    context = None if corpus.classes else ngram_context_for(corpus)  # the n-gram is not conditioned on classes
    doc = auto_recipe(stats, gpu=on_gpu(given.get("device") or "auto"), ngram_context=context,
                      networks=given.get("networks"))  # a given number: each network still has its own rows
    spec = resolve_run(doc, None, given)
    return dataclasses.replace(spec, note=auto_note(stats, spec), corpus=corpus)
