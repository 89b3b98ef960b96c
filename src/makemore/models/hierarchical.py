"""The lecture's WaveNet: a tree of FlattenConsecutive(2) + Linear + BatchNorm1d + Tanh over a window."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from makemore.models.base import WindowModel, levels_for
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
        levels = levels_for(config.block_size)
        self.net = tree(config.vocab_size, config.n_embd, config.n_hidden, [2] * levels, generator)

    # Cached generation: the tree is a dilated causal convolution, whose per-layer queues make each new
    # character cost one step per level (see ConvTree).
    def init_cache(self, batch_size: int, cls=None):
        from makemore.models.wavenet import ConvTree

        conv = ConvTree.from_hierarchical(self).eval()
        return conv.init_cache(batch_size, cls)

    def step(self, tokens, cache):
        return cache.model.step(tokens, cache)
