"""An interpolated Kneser-Ney n-gram model: counted in one pass, as the bigram is, with block_size characters of
context. A strong baseline on small lists, and an ensemble member whose errors differ from a network's.

P(w | h) = max(c(h w) - D, 0) / c(h) + D * N1+(h .) / c(h) * P(w | h'), h' being h less its first token; the
lower orders count continuations (N1+(. h w): how many tokens precede h w) instead of occurrences, and the
lowest interpolates with the uniform distribution. A context never seen gives the next lower order's P.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from makemore.errors import ConfigError


@dataclass
class NGramConfig:
    vocab_size: int = 27
    block_size: int = 4  # characters of context: a (block_size + 1)-gram
    discount: float = 0.75  # D


class NGram(nn.Module):
    windowed = True

    def __init__(self, config: NGramConfig, generator: torch.Generator | None = None):
        super().__init__()
        if config.vocab_size ** (config.block_size + 1) >= 2**62:
            raise ConfigError("block_size", f"{config.block_size} characters of context over {config.vocab_size} "
                                            "tokens are more contexts than an n-gram table can number")
        self.config = config
        for k in range(config.block_size + 1):  # order k: k tokens of context; sizes come from the data
            self.register_buffer(f"ids{k}", torch.zeros(0, dtype=torch.long))  # (n_k,) sorted context ids
            self.register_buffer(f"counts{k}", torch.zeros(0, config.vocab_size))  # (n_k, V)

    @property
    def num_params(self) -> int:
        return sum(getattr(self, f"counts{k}").count_nonzero().item() for k in range(self.config.block_size + 1))

    def context_ids(self, windows, k: int):  # (N, block_size) -> (N,): the last k tokens as one number
        V = self.config.vocab_size
        ids = torch.zeros(len(windows), dtype=torch.long, device=windows.device)
        for t in range(windows.shape[1] - k, windows.shape[1]):
            ids = ids * V + windows[:, t]
        return ids

    @torch.no_grad()
    def fit(self, X, Y):
        """Count the windows X (N, block_size) and their targets Y (N,): occurrences at the highest order,
        continuations below it."""
        V, B = self.config.vocab_size, self.config.block_size
        for k in range(B + 1):
            if k == B:  # occurrences of (context, next)
                pairs = self.context_ids(X, k) * V + Y
                ids, counts = torch.unique(pairs, return_counts=True)
            else:  # continuations: distinct (preceding token, context, next), counted per (context, next)
                longer = torch.unique(self.context_ids(X, k + 1) * V + Y)
                ids, counts = torch.unique(longer % (V ** (k + 1)), return_counts=True)
            contexts, rows = torch.unique(ids // V, return_inverse=True)
            table = torch.zeros(len(contexts), V, device=X.device)
            table.index_put_((rows, ids % V), counts.float(), accumulate=True)
            setattr(self, f"ids{k}", contexts)
            setattr(self, f"counts{k}", table)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for k in range(self.config.block_size + 1):  # the counted tables' sizes are the data's
            for name in (f"ids{k}", f"counts{k}"):
                if prefix + name in state_dict:
                    setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, idx, targets=None):
        D, V = self.config.discount, self.config.vocab_size
        probs = torch.full((len(idx), V), 1 / V, device=idx.device)  # (B, V): below the lowest order, uniform
        for k in range(self.config.block_size + 1):
            ids, counts = getattr(self, f"ids{k}"), getattr(self, f"counts{k}")
            if len(ids) == 0:
                continue
            wanted = self.context_ids(idx, k)
            row = torch.searchsorted(ids, wanted).clamp(max=len(ids) - 1)
            seen = ids[row] == wanted  # (B,)
            c = counts[row]  # (B, V)
            total = c.sum(-1, keepdim=True)
            kinds = (c > 0).sum(-1, keepdim=True)
            mixed = ((c - D).clamp(min=0) + D * kinds * probs) / total.clamp(min=1)
            probs = torch.where(seen[:, None] & (total > 0), mixed, probs)
        logits = probs.clamp(min=1e-12).log()  # (B, V): log-probabilities
        loss = None if targets is None else nn.functional.cross_entropy(logits, targets)
        return logits, loss
