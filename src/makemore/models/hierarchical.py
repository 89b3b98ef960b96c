"""The lecture's WaveNet: a tree of FlattenConsecutive(2) + Linear + BatchNorm1d + Tanh over a window."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from makemore.errors import UserError
from makemore.scratch import BatchNorm1d, Embedding, FlattenConsecutive, Linear, Sequential, Tanh


def tree(vocab_size, n_embd, n_hidden, groups, generator=None) -> Sequential:
    """Embedding, then per group size n: FlattenConsecutive(n), Linear(no bias), BatchNorm1d, Tanh; then Linear.

    groups=[block_size] is the lecture's flat MLP; groups=[2, 2, 2] is its hierarchical model.
    Layers are built in the lecture's order, so they draw their initial weights in its order.
    """
    layers = [Embedding(vocab_size, n_embd, generator=generator)]
    fan_in = n_embd
    for n in groups:
        layers += [FlattenConsecutive(n), Linear(fan_in * n, n_hidden, bias=False, generator=generator)]
        layers += [BatchNorm1d(n_hidden), Tanh()]
        fan_in = n_hidden
    layers.append(Linear(fan_in, vocab_size, generator=generator))
    with torch.no_grad():
        layers[-1].weight *= 0.1  # last layer: less confident at init
    return Sequential(layers)


class WindowModel(nn.Module):
    """A model that predicts the next token from a window of the block_size previous ones."""

    windowed = True

    def forward(self, idx, targets=None):
        logits = self.net(idx)  # (B, T) -> (B, vocab_size)
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return logits, loss


@dataclass
class HierarchicalConfig:
    vocab_size: int = 27
    block_size: int = 8  # the context; 2 ** n_levels
    n_embd: int = 24
    n_hidden: int = 128


class Hierarchical(WindowModel):
    def __init__(self, config: HierarchicalConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        levels = round(math.log2(config.block_size)) if config.block_size > 0 else 0
        if levels < 1 or 2**levels != config.block_size:
            raise UserError(f"--context: the hierarchical model needs a power of 2 of at least 2, got {config.block_size}")
        self.net = tree(config.vocab_size, config.n_embd, config.n_hidden, [2] * levels, generator)
