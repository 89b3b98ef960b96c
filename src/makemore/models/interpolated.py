"""A network and an n-gram as one model, the default recipe's: p = (1 - s) p_network + s p_ngram at every
position. Any sequence family can be the network (with_ngram); the registry holds gru+ngram, the default's.

The network trains on its own loss, as it would alone: the n-gram, counted from the training split, has seen
every training target, and mixed in during training it would teach the network to lean on its memory. The
n-gram is counted before the first step, with a context chosen on val (ngram.choose_context), and the share s
is chosen on val at every evaluation (choose_share), so the model an evaluation keeps is the mixture at its
best share; its val loss is a choice made on val, and test is the figure to compare.

The n-gram's discount (discount = 0, the default) is chosen with the share, between DISCOUNTS: on the Japanese
lists of the own-lists ladder (hundreds of characters, most seen a few times) 0.9 gained up to 0.06 val and 0.1
test over 0.75, while every Latin-script and Cyrillic list kept 0.75 (a finer grid, chosen on their small val
sets, lost on test). It is a buffer, so an evaluation's kept state and a checkpoint carry it.
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
              ("discount", float, dataclasses.field(default=0.0))]  # 0: chosen on val, among DISCOUNTS
    return dataclasses.make_dataclass(f"{config_cls.__name__[:-6]}NGramConfig", fields, bases=(config_cls,),
                                      namespace={"network": (name, config_cls, model_cls)})  # not a field


DISCOUNTS = (0.75, 0.9)  # the n-gram's discounts a mixture chooses among; the first where they tie


def starting_discount(discount: float) -> float:
    """A config's discount, or (0: to be chosen) the one the n-gram counts and starts with."""
    return discount or DISCOUNTS[0]


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
        ngram = NGramConfig(config.vocab_size, config.ngram_context, starting_discount(config.discount))
        self.members = nn.ModuleList([model_cls(network, generator=generator), NGram(ngram)])
        self.register_buffer("share", torch.tensor(0.5))
        self.register_buffer("discount", torch.tensor(ngram.discount, dtype=torch.float64))  # the n-gram's, as chosen

    def set_discount(self, discount: float):
        self.discount.fill_(discount)
        self.members[1].set_discount(self.discount.item())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint from before the discount was a buffer: the discount of its config
        default = torch.tensor(starting_discount(self.config.discount), dtype=torch.float64)
        state_dict.setdefault(prefix + "discount", default)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.members[1].set_discount(self.discount.item())

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
        """The n-gram's share (and, where the config leaves it to the data, its discount) that gives data (X, Y:
        val's whole sequences) the lowest loss, set; that loss (the mean per target, as evaluate() computes it, in
        float64)."""
        chosen = None
        with evaluating(self):
            network = target_probs(self.members[0], data)
            for discount in (self.config.discount,) if self.config.discount else DISCOUNTS:
                self.set_discount(discount)
                probs = torch.stack([network, target_probs(self.members[1], data)], dim=1)  # (targets, 2)
                weights = fit_weights(probs)
                loss = -(probs @ torch.tensor(weights, dtype=probs.dtype)).log().mean().item()
                if chosen is None or loss < chosen[0]:
                    chosen = loss, discount, weights[1]
        loss, discount, share = chosen
        self.set_discount(discount)
        self.share.fill_(share)
        return loss

    def chosen_on_val(self) -> dict:
        """The share and the discount choose_share set, as a run's evaluation records them."""
        return {"ngram_share": round(self.share.item(), 4), "ngram_discount": self.discount.item()}
