"""A network and an n-gram as one model, the default recipe's: p = (1 - s) p_network + s p_ngram at every
position. Any sequence family can be the network (with_ngram); the registry holds gru+ngram, the default's.

The network trains on its own loss, as it would alone: the n-gram, counted from the training split, has seen
every training target, and mixed in during training it would teach the network to lean on its memory. The
n-gram is counted before the first step, with a context chosen on val (ngram.choose_context), and the share s
is chosen on val at every evaluation (choose_share), so the model an evaluation keeps is the mixture at its
best share; its val loss is a choice made on val, and test is the figure to compare.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from makemore.data import IGNORE
from makemore.errors import ConfigError
from makemore.models.base import evaluating, position_windows, target_probs
from makemore.models.ensemble import Mixture, fit_weights
from makemore.models.ngram import NGram, NGramConfig


def with_ngram(name: str, config_cls, model_cls):
    """The config class of "<name>+ngram": the network's fields, then the n-gram's."""
    fields = [("ngram_context", int, dataclasses.field(default=0)),  # 0: chosen from the list (ngram.choose_context)
              ("discount", float, dataclasses.field(default=0.75))]
    return dataclasses.make_dataclass(f"{config_cls.__name__[:-6]}NGramConfig", fields, bases=(config_cls,),
                                      namespace={"network": (name, config_cls, model_cls)})  # not a field


class Interpolated(Mixture):
    """members[0]: the network; members[1]: the n-gram; share: the n-gram's weight."""

    def __init__(self, config, generator: torch.Generator | None = None):
        super().__init__()
        name, config_cls, model_cls = config.network
        if config.n_classes:
            raise ConfigError("condition", f"the n-gram of {name}+ngram is not conditioned on classes; "
                                           f"use {name} alone")
        if config.ngram_context < 1:
            raise ConfigError("ngram_context", "needed to build the model: a context of at least 1 (a run chooses "
                                               "one from its list where it is 0)")
        self.config = config
        network = config_cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config_cls)})
        ngram = NGramConfig(config.vocab_size, config.ngram_context, config.discount)
        self.members = nn.ModuleList([model_cls(network, generator=generator), NGram(ngram)])
        self.register_buffer("share", torch.tensor(0.5))

    @property
    def log_weights(self):
        return torch.stack([1 - self.share, self.share]).log()

    @torch.no_grad()
    def fit(self, X, Y):
        """Count the n-gram from the training split's whole sequences X, Y (N, T)."""
        windows = position_windows(X, self.config.ngram_context)  # (N, T, context)
        targets = Y != IGNORE
        self.members[1].fit(windows[targets], Y[targets])

    def forward(self, idx, targets=None, cls=None):
        if self.training:  # the network learns alone
            return self.members[0](idx, targets)
        return super().forward(idx, targets)

    @torch.no_grad()
    def choose_share(self, data) -> float:
        """The n-gram's share that gives data (X, Y: val's whole sequences) the lowest loss, set; that loss (the
        mean per target, as evaluate() computes it, in float64)."""
        with evaluating(self):
            probs = torch.stack([target_probs(member, data) for member in self.members], dim=1)  # (targets, 2)
        weights = fit_weights(probs)
        self.share.fill_(weights[1])
        return -(probs @ torch.tensor(weights, dtype=probs.dtype)).log().mean().item()
