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

With networks = k > 1 (the auto recipe's, where a small list leaves the time), k networks of the one config, each
from its own initialisation and dropout, train side by side, network i on rows i, i + k, ... of the batch (a
batch of batch_size / k of its own) and on its own loss. Each keeps its own best weights (a copy, not trained:
members[i]), those whose mixture with the n-gram has the lowest val loss so far, as k runs stopped each at its
own best would; an evaluation mixes the k kept networks with equal weights and that mean with the n-gram at the
share chosen on val. (k + 1 weights chosen by EM on val lowered val but not the loss on thousands of other items
of the list's source: the networks are alike, and a small list's val set cannot tell them apart;
benchmarks/README.md.) The live networks (live) are what trains and resumes; the checkpoint holds both.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from makemore.data import IGNORE
from makemore.errors import ConfigError
from makemore.models.base import evaluating, position_windows, target_probs
from makemore.models.ensemble import Mixture, best_mixture, grouped_mixture
from makemore.models.ngram import NGram, NGramConfig


def with_ngram(name: str, config_cls, model_cls):
    """The config class of "<name>+ngram": the network's fields, then the n-gram's."""
    fields = [("ngram_context", int, dataclasses.field(default=0)),  # 0: chosen from the list (ngram.choose_context)
              ("discount", float, dataclasses.field(default=0.0)),  # 0: chosen on val, among DISCOUNTS
              ("networks", int, dataclasses.field(default=1))]  # trained side by side, each kept at its best, mixed
    return dataclasses.make_dataclass(f"{config_cls.__name__[:-6]}NGramConfig", fields, bases=(config_cls,),
                                      namespace={"network": (name, config_cls, model_cls)})  # not a field


NONE_KEPT = torch.finfo(torch.float64).max  # a kept network's loss before its first evaluation (finite: checkpoints
# are checked for weights that are not finite numbers)
DISCOUNTS = (0.75, 0.9)  # the n-gram's discounts a mixture chooses among; the first where they tie


def starting_discount(discount: float) -> float:
    """A config's discount, or (0: to be chosen) the one the n-gram counts and starts with."""
    return discount or DISCOUNTS[0]


class Interpolated(Mixture):
    """members[:-1]: the network (or the k networks' kept copies); members[-1]: the n-gram; share: the n-gram's
    weight; network_weights (k > 1): the networks' weights among themselves."""

    def __init__(self, config, generator: torch.Generator | None = None):
        super().__init__()
        name, config_cls, model_cls = config.network
        if config.n_classes:
            raise ConfigError("condition", f"the n-gram of {name}+ngram is not conditioned on classes; "
                                           f"use {name} alone")
        if config.ngram_context < 1:
            raise ConfigError("ngram_context", "needed to build the model: a context of at least 1 (a run chooses "
                                               "one from its list where it is 0)")
        if config.networks < 1:
            raise ConfigError("networks", f"at least 1; got {config.networks}")
        self.config = config
        network = config_cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config_cls)})
        ngram = NGramConfig(config.vocab_size, config.ngram_context, starting_discount(config.discount))
        networks = [model_cls(network, generator=generator) for _ in range(config.networks)]
        self.live = None  # one network: the one that trains is the one kept (the loop keeps its best weights)
        if config.networks > 1:
            self.live = nn.ModuleList(networks)
            networks = [copy.deepcopy(net).requires_grad_(False) for net in networks]
            self.register_buffer("network_weights", torch.full((config.networks,), 1 / config.networks))
            self.register_buffer("kept_loss", torch.full((config.networks,), NONE_KEPT, dtype=torch.float64))
        self.members = nn.ModuleList([*networks, NGram(ngram)])
        self.register_buffer("share", torch.tensor(0.5))
        self.register_buffer("discount", torch.tensor(ngram.discount, dtype=torch.float64))  # the n-gram's, as chosen
        self.kept_probs = None  # the kept networks' val probabilities, while their weights stay (k > 1)

    def set_discount(self, discount: float):
        self.discount.fill_(discount)
        self.members[-1].set_discount(self.discount.item())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint from before the discount was a buffer: the discount of its config
        default = torch.tensor(starting_discount(self.config.discount), dtype=torch.float64)
        state_dict.setdefault(prefix + "discount", default)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.members[-1].set_discount(self.discount.item())
        self.kept_probs = None

    @property
    def log_weights(self):
        networks = self.network_weights if self.live is not None else self.share.new_ones(1)
        return torch.cat([(1 - self.share) * networks, self.share[None]]).log()

    @torch.no_grad()
    def fit(self, X, Y):
        """Count the n-gram from the training split's whole sequences X, Y (N, T)."""
        contexts, nexts = [], []
        for rows in torch.arange(len(X)).split(4096):  # in parts: the windows of every row at once, padded, cost
            # a copy of X as large as the list's padding
            x, y = X[rows], Y[rows]
            targets = y != IGNORE
            contexts.append(position_windows(x, self.config.ngram_context)[targets])  # (targets, context)
            nexts.append(y[targets])
        self.members[-1].fit(torch.cat(contexts), torch.cat(nexts))

    def forward(self, idx, targets=None, cls=None):
        if not self.training:
            return super().forward(idx, targets)
        if self.live is None:  # the network learns alone
            return self.members[0](idx, targets)
        K = len(self.live)  # network k learns on rows k, k + K, ...: batches of its own, as in a run of its own
        if len(idx) < K:
            raise ConfigError("batch_size", f"at least {K} rows, one for each of the {K} networks; got {len(idx)}")
        outs = [net(idx[k::K], None if targets is None else targets[k::K]) for k, net in enumerate(self.live)]
        logits = torch.empty(*idx.shape, outs[0][0].shape[-1], dtype=outs[0][0].dtype, device=idx.device)
        for k, (x, _) in enumerate(outs):
            logits[k::K] = x
        return logits, None if targets is None else torch.stack([loss for _, loss in outs]).mean()

    @torch.no_grad()
    def choose_share(self, data) -> float:
        """The n-gram's share and, where the config leaves it to the data, its discount that give data (X, Y:
        val's whole sequences) the lowest loss, set; that loss (the mean per target, as evaluate() computes it, in
        float64). With k networks, each live network whose mixture with the n-gram is lower than its kept copy's
        replaces it first, and the k are mixed among themselves with equal weights."""
        discounts = (self.config.discount,) if self.config.discount else DISCOUNTS
        with evaluating(self):
            ngram = {}
            for discount in discounts:
                self.set_discount(discount)
                ngram[discount] = target_probs(self.members[-1], data)
            networks = [target_probs(net, data) for net in self.members[:-1]] if self.live is None else self.keep(data, ngram)
            groups = [list(range(len(networks))), [len(networks)]]  # the networks alike, the n-gram
            chosen = None
            for discount in discounts:
                loss, weights = grouped_mixture(torch.stack([*networks, ngram[discount]], dim=1), groups)
                if chosen is None or loss < chosen[0]:
                    chosen = loss, discount, weights
        loss, discount, weights = chosen
        self.set_discount(discount)
        self.share.fill_(weights[-1])
        if self.live is not None:
            self.network_weights.fill_(1 / len(networks))
        return loss

    def keep(self, data, ngram: dict) -> list:
        """Each live network whose mixture with the n-gram (at its best weight and discount) has a lower loss on
        data than its kept copy's, copied over it; the kept networks' probabilities of data's targets (kept
        between calls while the kept weights stay: data is always the run's val split)."""
        if self.kept_probs is None:
            self.kept_probs = [target_probs(net, data) for net in self.members[:-1]]
        for i, net in enumerate(self.live):
            probs = target_probs(net, data)
            loss = min(best_mixture(torch.stack([probs, p], dim=1))[0] for p in ngram.values())
            if loss < self.kept_loss[i]:
                self.members[i].load_state_dict(net.state_dict())
                self.kept_loss[i], self.kept_probs[i] = loss, probs
        return self.kept_probs

    def chosen_on_val(self) -> dict:
        """The share and the discount choose_share set, as a run's evaluation records them."""
        return {"ngram_share": round(self.share.item(), 4), "ngram_discount": self.discount.item()}
