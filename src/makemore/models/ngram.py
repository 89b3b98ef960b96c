"""An interpolated Kneser-Ney n-gram model: counted in one pass, as the bigram is, with block_size characters of
context. A strong baseline on small lists, and the part of the default model whose errors differ from a
network's (models/interpolated.py).

P(w | h) = max(c(h w) - D, 0) / c(h) + D * N1+(h .) / c(h) * P(w | h'), h' being h less its first token; the
lower orders count continuations (N1+(. h w): how many tokens precede h w) instead of occurrences, and the
lowest interpolates with the uniform distribution. A context never seen gives the next lower order's P.

Each order is stored sparsely, as the sorted ids of its seen (context, next) pairs and their counts: a long
context over a large list costs its pairs, not its contexts times the vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from makemore.data import BOUNDARY
from makemore.errors import ConfigError

MAX_CONTEXT = 10  # the longest context choose_context tries
MAX_ID = 2**62  # every (context, next) pair is numbered below this: V ** (context + 1) of them
DENSE = 2**20  # an order with at most this many contexts x tokens keeps its counts as rows too (4 MB)
AUTOMATON = 2**23  # generation's automaton: at most this many contexts x tokens (two tables of 32 MB), else windows


@dataclass
class NGramConfig:
    vocab_size: int = 27
    block_size: int = 4  # characters of context: a (block_size + 1)-gram
    discount: float = 0.75  # D


def context_ids(windows, k: int, V: int):
    """(N, T) windows -> (N,): the last k tokens of each as one number in base V."""
    ids = torch.zeros(len(windows), dtype=torch.long, device=windows.device)
    for t in range(windows.shape[1] - k, windows.shape[1]):
        ids = ids * V + windows[:, t]
    return ids


def count_pairs(X, Y, k: int, V: int, continuations: bool):
    """Order k's table from windows X (N, >= k + 1) and targets Y (N,): the sorted ids (context * V + next) of
    its seen pairs and their counts, of occurrences, or of continuations (distinct tokens before context, next)."""
    if not continuations:
        return torch.unique(context_ids(X, k, V) * V + Y, return_counts=True)
    longer = torch.unique(context_ids(X, k + 1, V) * V + Y)
    return torch.unique(longer % (V ** (k + 1)), return_counts=True)


class Table:
    """One order's counts, looked up: for contexts, c(h), N1+(h .) and whether h was seen; for (context, next)
    pairs, c(h w). A context's pairs lie together in pairs (sorted by context, then next)."""

    def __init__(self, pairs, counts, V: int):
        self.pairs, self.counts, self.V = pairs, counts.float(), V
        self.contexts, inverse, kinds = torch.unique_consecutive(pairs // V, return_inverse=True, return_counts=True)
        self.totals = torch.zeros(len(self.contexts), device=pairs.device).index_add_(0, inverse, self.counts)
        self.kinds = kinds.float()
        self.starts = kinds.cumsum(0) - kinds  # where each context's pairs begin
        self.dense = None  # the low orders, which have few contexts: every context's row of counts, at hand
        if len(self.contexts) * V <= DENSE:
            self.dense = torch.zeros(len(self.contexts), V, device=pairs.device)
            self.dense[inverse, pairs % V] = self.counts

    def lookup(self, ids):
        """ids (N,) -> (row (N,), seen (N,), c(h) (N,), N1+(h .) (N,)), zeros where h was never seen."""
        if len(self.contexts) == 0:
            zero = torch.zeros(len(ids), device=ids.device)
            return zero.long(), zero.bool(), zero, zero
        row = torch.searchsorted(self.contexts, ids).clamp(max=len(self.contexts) - 1)
        seen = self.contexts[row] == ids
        return row, seen, torch.where(seen, self.totals[row], 0.0), torch.where(seen, self.kinds[row], 0.0)

    def pair_counts(self, ids, nexts):
        """c(h w) for contexts ids (N,) and next tokens nexts (N, W); 0 for pairs never seen."""
        if len(self.pairs) == 0:
            return torch.zeros(nexts.shape, device=nexts.device)
        keys = ids[:, None] * self.V + nexts
        j = torch.searchsorted(self.pairs, keys.reshape(-1)).clamp(max=len(self.pairs) - 1).view(keys.shape)
        return torch.where(self.pairs[j] == keys, self.counts[j], 0.0)

    def rows(self, row, seen):
        """(N, V): the counts of each seen context's next tokens, scattered from its pairs (zeros where unseen):
        the work is the pairs the contexts have, not N x V lookups."""
        if self.dense is not None and len(self.contexts):
            return torch.where(seen[:, None], self.dense[row], 0.0)
        out = torch.zeros(len(row), self.V, device=row.device)
        lengths = torch.where(seen, self.kinds[row], 0.0).long() if len(self.contexts) else torch.zeros_like(row)
        if lengths.sum() == 0:
            return out
        query = torch.repeat_interleave(torch.arange(len(row), device=row.device), lengths)
        first = torch.repeat_interleave(self.starts[row] - (lengths.cumsum(0) - lengths), lengths)
        at = first + torch.arange(len(query), device=row.device)  # each query's pairs, one after another
        out[query, self.pairs[at] % self.V] = self.counts[at]
        return out

    def interpolate(self, ids, lower, D: float, nexts=None):
        """P(next | h) at this order for contexts ids (N,), from the next lower order's lower: of every token,
        (N, V), or of the tokens nexts (N, W) only, (N, W)."""
        row, seen, total, kinds = self.lookup(ids)
        c = self.rows(row, seen) if nexts is None else self.pair_counts(ids, nexts)
        mixed = ((c - D).clamp(min=0) + D * kinds[:, None] * lower) / total.clamp(min=1)[:, None]
        return torch.where(seen[:, None], mixed, lower)


class NGram(nn.Module):
    windowed = True

    def __init__(self, config: NGramConfig, generator: torch.Generator | None = None):
        super().__init__()
        if config.vocab_size ** (config.block_size + 1) >= MAX_ID:
            raise ConfigError("block_size", f"{config.block_size} characters of context over {config.vocab_size} "
                                            "tokens are more contexts than an n-gram table can number")
        if not 0 < config.discount <= 1:
            raise ConfigError("discount", f"the n-gram's discount is in (0, 1]; got {config.discount}")
        self.config = config
        for k in range(config.block_size + 1):  # order k: k tokens of context; sizes come from the data
            self.register_buffer(f"pairs{k}", torch.zeros(0, dtype=torch.long))  # (n_k,) sorted pair ids
            self.register_buffer(f"counts{k}", torch.zeros(0))  # (n_k,)
        self.index()

    @property
    def num_params(self) -> int:
        return sum(len(getattr(self, f"pairs{k}")) for k in range(self.config.block_size + 1))

    def index(self):
        """Each order's Table, made from its pairs and counts (after counting, loading, or a move)."""
        V = self.config.vocab_size
        self.tables = [Table(getattr(self, f"pairs{k}"), getattr(self, f"counts{k}"), V)
                       for k in range(self.config.block_size + 1)]
        self._automaton = None  # made on first use (automaton()); False: too large for one

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)  # .to(device) and the like: the lookups follow the buffers
        self.index()
        return self

    @torch.no_grad()
    def fit(self, X, Y):
        """Count the windows X (N, block_size) and their targets Y (N,): occurrences at the highest order,
        continuations below it."""
        B = self.config.block_size
        for k in range(B + 1):
            pairs, counts = count_pairs(X, Y, k, self.config.vocab_size, continuations=k < B)
            setattr(self, f"pairs{k}", pairs)
            setattr(self, f"counts{k}", counts.float())
        self.index()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        V = self.config.vocab_size
        for k in range(self.config.block_size + 1):
            ids, counts = state_dict.get(f"{prefix}ids{k}"), state_dict.get(f"{prefix}counts{k}")
            if ids is not None and counts is not None and counts.dim() == 2:  # a checkpoint of dense tables
                rows, nexts = counts.nonzero(as_tuple=True)
                state_dict[f"{prefix}pairs{k}"] = ids[rows] * V + nexts
                state_dict[f"{prefix}counts{k}"] = counts[rows, nexts]
                del state_dict[f"{prefix}ids{k}"]
            for name in (f"pairs{k}", f"counts{k}"):  # the counted tables' sizes are the data's
                if prefix + name in state_dict:
                    setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.index()

    def set_discount(self, discount: float):
        """Another discount D for the counts as they are (a mixture chooses it on val): generation's automaton,
        made with the old one, is made again on first use."""
        if discount != self.config.discount:
            self.config.discount = discount
            self._automaton = None

    @torch.no_grad()
    def automaton(self):
        """The n-gram as an automaton, for generation, or None where it would pass AUTOMATON entries: its nodes
        are the contexts of every order, each with its log-probabilities (N, V) and, per next token, the node it
        goes to (N, V). A window's P(next) is the one of its longest seen context (a longer context never seen
        passes the lower order's P through), and the contexts seen are closed under taking a suffix and a prefix,
        so the longest seen context of a window and a token is the longest seen suffix of its node and the token."""
        if self._automaton is None:
            self._automaton = Automaton.of(self) or False
        return self._automaton or None

    @property
    def cached(self) -> bool:
        """Whether generation steps through the automaton; without one it reads windows (sample.NaiveStep)."""
        return self.automaton() is not None

    def init_cache(self, batch_size: int, cls=None):
        return NGramState(self.automaton(), batch_size)

    def step(self, tokens, cache):  # (B,) -> (B, V)
        return cache.advance(tokens)

    def forward(self, idx, targets=None, cls=None):
        logits = self.probs(idx).clamp(min=1e-12).log()  # (B, V): log-probabilities
        loss = None if targets is None else nn.functional.cross_entropy(logits, targets)
        return logits, loss

    def probs(self, idx, nexts=None):
        """P(next | window) for windows idx (B, block_size): of every token (B, V), or of nexts (B, W) only."""
        V = self.config.vocab_size
        probs = torch.full((len(idx), V if nexts is None else nexts.shape[1]), 1 / V, device=idx.device)
        ids, scale = torch.zeros(len(idx), dtype=torch.long, device=idx.device), 1
        for k, table in enumerate(self.tables):  # from the uniform distribution up the orders
            if k:  # the context one token longer: context_ids(idx, k, V), one step on from k - 1's
                ids, scale = ids + idx[:, -k] * scale, scale * V
            probs = table.interpolate(ids, probs, self.config.discount, nexts)
        return probs

    def target_logprobs(self, idx, targets):
        """log P(target | window) for windows idx (N, block_size) and targets (N,): (N,), float64, looked up
        target by target (evaluate() and choosing a mixture's weights need no other token's probability)."""
        return self.probs(idx, targets[:, None])[:, 0].double().clamp(min=1e-12).log()


class Automaton:
    """An n-gram's contexts as nodes (order by order, each order's sorted), their log-probabilities logp (N, V),
    the node each goes to on each token, moves (N, V), and the node before a word's first token, start (1,)."""

    def __init__(self, model):
        tables, V, B, D = model.tables, model.config.vocab_size, model.config.block_size, model.config.discount
        offsets = [sum(len(t.contexts) for t in tables[:k]) for k in range(B + 2)]
        device = tables[0].contexts.device
        probs = [tables[0].interpolate(tables[0].contexts, torch.full((1, V), 1 / V, device=device), D)]
        moves = []
        for k, table in enumerate(tables):  # order by order, a context's P and moves from its suffix one shorter's
            suffix = torch.searchsorted(tables[k - 1].contexts, table.contexts % V ** (k - 1)) if k else None
            if k:
                probs.append(table.interpolate(table.contexts, probs[-1][suffix], D))
            # context + token: a node where seen (and at most B long), else where the suffix + token goes
            shorter = moves[-1][suffix] if k else torch.zeros(1, V, dtype=torch.long, device=device)
            if k == B or not len(tables[k + 1].contexts):
                moves.append(shorter.expand(len(table.contexts), V))
                continue
            longer = tables[k + 1].contexts
            extended = table.contexts[:, None] * V + torch.arange(V, device=device)
            row = torch.searchsorted(longer, extended).clamp(max=len(longer) - 1)
            moves.append(torch.where(longer[row] == extended, offsets[k + 1] + row, shorter))
        self.logp = torch.cat(probs).clamp(min=1e-12).log()  # (N, V), as forward() gives them
        self.moves, self.V = torch.cat(moves).int(), V  # (N, V): nodes number below AUTOMATON
        self.start = torch.zeros(1, dtype=torch.int, device=device)  # the empty context, then the boundary tokens
        for _ in range(B - 1):  # a word's first window (sample.NaiveStep's): B - 1 boundary tokens, then its first
            self.start = self.moves[self.start, BOUNDARY]

    @classmethod
    def of(cls, model):
        """model's automaton; None where it would pass AUTOMATON entries or the n-gram was never counted."""
        sizes = [len(t.contexts) for t in model.tables]
        return cls(model) if sizes[0] and sum(sizes) * model.config.vocab_size <= AUTOMATON else None


class NGramState:
    """A generation's rows: each one's node of the automaton."""

    def __init__(self, automaton: Automaton, batch_size: int):
        self.automaton, self.node = automaton, automaton.start.expand(batch_size)

    def select(self, rows):
        self.node = self.node.index_select(0, rows)

    def advance(self, tokens):  # (B,) -> (B, V)
        self.node = self.automaton.moves.view(-1).index_select(0, self.node * self.automaton.V + tokens)
        return self.automaton.logp.index_select(0, self.node)


def longest_context(V: int) -> int:
    """The longest context choose_context tries over V tokens: at most MAX_CONTEXT, numbered below MAX_ID."""
    return min(MAX_CONTEXT, max(1, math.floor(math.log(MAX_ID - 1) / math.log(V)) - 1))


@torch.no_grad()
def choose_context(train, val, V: int, D: float = 0.75) -> tuple[int, list[float]]:
    """The n-gram context for a mixture with a network, from windows of the training split (X, Y) and of val:
    the context whose n-gram alone has the lowest val loss, plus one. On the own-lists ladder the mixture's best
    n-gram was that much sharper than the best alone (the network covers its unseen contexts), within 0.0004 of
    choosing the context on the mixture's own val loss. Each order is counted once; the val loss of every
    context comes from one pass up the orders, target by target. Also the val losses, one per context from 1."""
    X, Y = train
    Xv, Yv = val
    top = min(longest_context(V), X.shape[1])
    lower = torch.full((len(Yv), 1), 1 / V)  # the continuation orders below the context, at val's targets
    losses = []
    for C in range(1, top + 1):
        below = Table(*count_pairs(X, Y, C - 1, V, continuations=True), V)
        lower = below.interpolate(context_ids(Xv, C - 1, V), lower, D, Yv[:, None])
        occurrences = Table(*count_pairs(X, Y, C, V, continuations=False), V)
        p = occurrences.interpolate(context_ids(Xv, C, V), lower, D, Yv[:, None])
        losses.append(-p.clamp(min=1e-12).log().mean().item())
        if len(losses) >= 3 and losses[-1] > losses[-2] > losses[-3]:
            break  # past the best: longer contexts only see less
    best = min(range(len(losses)), key=losses.__getitem__) + 1
    return min(best + 1, top), losses
