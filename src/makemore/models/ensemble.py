"""Several trained models as one: the weighted mixture of their next-character distributions.

Averaging distributions (not logits) is the ensemble whose loss is at most the members' weighted mean loss
(the log of a mixture is at least the mixture of the logs), and it samples, scores, evaluates and serves as any
model does. Members may be of any family; window models are run on every position's window. In generation each
member steps as it would alone (sample.MixtureStep) and mix() combines them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from makemore.errors import ConfigError
from makemore.models.base import SequenceModel, position_logits, target_logprobs


@dataclass
class EnsembleConfig:
    vocab_size: int = 27
    block_size: int = 16  # the sequence length it is evaluated on: the longest item + 1
    members: list = field(default_factory=list)  # [{"model": registry name, "config": its config as a dict}]
    weights: list = field(default_factory=list)  # mixture weights, one per member, summing to 1; [] = uniform


def check_weights(weights, n: int) -> list[float]:
    """Mixture weights of n members: one each, at least 0, summing to 1; none given: uniform."""
    weights = list(weights) or [1 / n] * n
    if len(weights) != n or any(w < 0 for w in weights) or not math.isclose(sum(weights), 1.0):
        raise ConfigError("weights", f"one weight of at least 0 per member, summing to 1; got {weights}")
    return weights


def fit_weights(probs, iterations: int = 2000, tolerance: float = 1e-12) -> list[float]:
    """The mixture weights that maximise the mean log-likelihood of targets whose probability under each of K
    models is probs (N, K), by expectation-maximisation: each target's responsibilities r = w p / (w . p), then
    w = the mean of r, until the log-likelihood (concave in w) gains less than tolerance."""
    probs = probs.double()
    weights = torch.full((probs.shape[1],), 1 / probs.shape[1], dtype=torch.float64)
    before = -math.inf
    for _ in range(iterations):
        mixed = probs @ weights  # (N,)
        after = mixed.log().mean().item()
        if after - before < tolerance:
            break
        before = after
        weights = (probs * weights / mixed[:, None]).mean(0)
    return (weights / weights.sum()).tolist()


def best_mixture(probs) -> tuple[float, list[float]]:
    """The weights of the mixture of models whose target probabilities are probs (targets, models) with the lowest
    mean loss (fit_weights), and that loss."""
    weights = fit_weights(probs)
    return -(probs @ torch.tensor(weights, dtype=probs.dtype)).log().mean().item(), weights


def grouped_mixture(probs, groups) -> tuple[float, list[float]]:
    """best_mixture where the members of each group (lists of columns of probs: (targets, members)) share one
    weight equally, their mean one component: alike members, which val cannot tell apart, get no weight of their
    own fitted to it. The loss, and a weight for every member."""
    loss, chosen = best_mixture(torch.stack([probs[:, g].mean(1) for g in groups], dim=1))
    weights = [0.0] * probs.shape[1]
    for g, w in zip(groups, chosen):
        for i in g:
            weights[i] = w / len(g)
    return loss, weights


class Mixture(SequenceModel):
    """Members whose next-character distributions are mixed with the weights exp(log_weights): (M,). In
    generation each member steps as it would alone (sample.MixtureStep) and mix() combines them."""

    cond = None  # a mixture is not conditioned

    @property
    def num_params(self) -> int:
        """Every member's, a count table's counted as its entries (as the registry counts them)."""
        return sum(getattr(m, "num_params", None) or sum(p.numel() for p in m.parameters()) for m in self.members)

    @property
    def receptive_field(self) -> None:
        return None  # the whole history: recurrent members read all of it

    @property
    def longest_word(self) -> int | None:
        limits = [m.longest_word for m in self.members if getattr(m, "longest_word", None) is not None]
        return min(limits) if limits else None

    def mix(self, logits: list) -> torch.Tensor:
        """log sum_i w_i softmax(logits_i): the mixture's log-probabilities, (..., V)."""
        logp = torch.stack([F.log_softmax(x.float(), dim=-1) for x in logits])  # (M, ..., V)
        return torch.logsumexp(logp + self.log_weights.view(-1, *[1] * (logp.dim() - 1)), dim=0)

    def forward(self, idx, targets=None, cls=None):
        logits = self.mix([position_logits(m, idx) for m in self.members])  # (B, T, V) log-probabilities
        return logits, self.loss(logits, targets)

    def target_logprobs(self, idx, targets):
        """log sum_i w_i p_i(target) at each target of whole sequences (see base.target_logprobs): (N,)."""
        logp = torch.stack([target_logprobs(m, idx, targets) for m in self.members])  # (M, N)
        return torch.logsumexp(logp + self.log_weights.double()[:, None], dim=0)


class Ensemble(Mixture):
    def __init__(self, config: EnsembleConfig, members: list[nn.Module]):
        super().__init__()
        if not members or len(members) != len(config.members):
            raise ConfigError("members", f"{len(config.members)} described, {len(members)} given; at least one")
        weights = check_weights(config.weights, len(members))
        for m in members:
            if getattr(getattr(m, "config", None), "n_classes", 0):
                raise ConfigError("members", "a conditioned model cannot be a member")
        self.config = config
        self.members = nn.ModuleList(members)
        self.register_buffer("log_weights", torch.tensor(weights).log(), persistent=False)
