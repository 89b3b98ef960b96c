"""The flat MLP of Bengio et al. 2003 as the lecture writes it: Embedding, Flatten, Linear, BatchNorm, Tanh, Linear."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from makemore.errors import ConfigError
from makemore.models.base import WindowModel
from makemore.models.hierarchical import tree


@dataclass
class MLPConfig:
    vocab_size: int = 27
    block_size: int = 3
    n_embd: int = 10
    n_hidden: int = 200


class MLP(WindowModel):
    def __init__(self, config: MLPConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        if config.block_size < 1:
            raise ConfigError("block_size", f"must be at least 1, got {config.block_size}")
        self.net = tree(config.vocab_size, config.n_embd, config.n_hidden, [config.block_size], generator)
