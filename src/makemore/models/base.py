"""What the model families share: how a window model and a whole-sequence model compute their loss."""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from makemore.data import BOUNDARY, IGNORE
from makemore.errors import ConfigError


@contextmanager
def evaluating(model):
    """The model in eval mode for the block (dropout off, BatchNorm's running statistics), then back in the mode
    it was in, whatever the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def dropout(x, p: float, training: bool):
    """F.dropout in distribution: each element zeroed with probability p, the rest scaled by 1 / (1 - p). On a
    CPU its mask is a uniform draw compared with p: torch's own draws Bernoulli numbers, which for a GRU's
    (64, 16, 192) outputs took 2.5-3.5 ms forward and backward against 1.3-1.8 ms (2 cores), out of a training
    step's 16-20. Elsewhere, and at p = 0, torch's."""
    if not training or p == 0 or x.device.type != "cpu":
        return F.dropout(x, p, training)
    keep = torch.rand(x.shape, dtype=torch.float32) >= p
    return x * keep.to(x.dtype).mul_(1 / (1 - p))


def levels_for(block_size: int) -> int:
    """The depth of a tree of pairs that covers block_size positions."""
    levels = round(math.log2(block_size)) if block_size > 0 else 0
    if levels < 1 or 2**levels != block_size:
        raise ConfigError("block_size", f"the tree needs a power of 2 of at least 2, got {block_size}")
    return levels


def position_logits(model, idx, cls=None):
    """Any model's logits at every position of whole sequences: idx (B, T) -> (B, T, V). A window model is run on
    each position's window, the block_size tokens before it (boundary tokens before the word)."""
    if not model.windowed:
        return model(idx, None, cls)[0] if cls is not None else model(idx)[0]
    B, T = idx.shape
    return model(position_windows(idx, model.config.block_size).reshape(B * T, -1))[0].view(B, T, -1)


def target_logprobs(model, idx, targets):
    """log p of each target of whole sequences idx, targets (B, T), in order, padding (IGNORE) left out: (N,),
    float64. A model with its own target_logprobs (an n-gram looks targets up one by one; a mixture mixes its
    members') computes it so; the others from their logits."""
    kept = targets != IGNORE
    if model.windowed:
        idx, targets = position_windows(idx, model.config.block_size)[kept], targets[kept]  # (N, bs), (N,)
        if hasattr(model, "target_logprobs"):
            return model.target_logprobs(idx, targets)
        return F.log_softmax(model(idx)[0].double(), dim=-1).gather(1, targets[:, None])[:, 0]
    if hasattr(model, "target_logprobs"):
        return model.target_logprobs(idx, targets)
    return F.log_softmax(model(idx)[0].double(), dim=-1)[kept].gather(1, targets[kept][:, None])[:, 0]


EVAL_POSITIONS = 1024 * 64  # positions an evaluation batch of whole sequences computes at most


def eval_batches(data, batch_size: int = 1024):
    """A split's batches for evaluation: yields (rows, the batch). Windows (X (N, T), Y (N,)) come in order.
    Whole sequences (X, Y, *rest: (N, T), (N, T), (N,)...) come with their rows sorted by length and each batch
    cut after its longest target, so that a split's longest word does not pad every batch to its length (no
    position sees the ones after it): on names' val, the GRU's pass took 0.20 s instead of 0.51 s, with the same
    probabilities to the bit."""
    Y = data[1]
    if Y.ndim == 1:
        for i in range(0, len(Y), batch_size):
            yield slice(i, i + batch_size), [t[i : i + batch_size] for t in data]
        return
    ends = (Y != IGNORE).sum(1)  # (N,): after the last target (a row's targets are its first positions)
    order = torch.argsort(ends, stable=True)
    sorted_ends, i = ends[order].tolist(), 0
    while i < len(order):
        # batch_size rows, or fewer where they are long: at most EVAL_POSITIONS positions, so that a few items far
        # longer than the rest cost their own rows (a network's activations: rows x length x width each)
        count = min(batch_size, len(order) - i)
        count = max(1, min(count, EVAL_POSITIONS // max(1, sorted_ends[i + count - 1])))  # rows are sorted: fewer
        rows, end = order[i : i + count], sorted_ends[i + count - 1]  # are no longer, so within the bound
        i += count
        if end:  # rows without a target have nothing to evaluate
            yield rows, [t[rows, :end] if t.ndim == 2 else t[rows] for t in data]


@torch.no_grad()
def target_probs(model, data, batch_size: int = 1024) -> torch.Tensor:
    """The probability the model gives each target of data (X, Y: whole sequences), in order: (targets,)."""
    X, Y = data[:2]
    counts = (Y != IGNORE).sum(1)  # (N,): a row's targets are its first positions, in order
    starts = counts.cumsum(0) - counts  # where each row's targets start among all of them
    probs = torch.zeros(int(counts.sum()), dtype=torch.float64, device=Y.device)
    for rows, (x, y, *_) in eval_batches((X, Y), batch_size):
        kept = y != IGNORE
        at = starts[rows, None] + torch.arange(y.shape[1], device=y.device)  # (rows, end): each position's place
        probs[at[kept]] = target_logprobs(model, x, y).exp()
    return probs


def position_windows(idx, size: int):
    """idx (B, T) -> (B, T, size): the window of each position, its size tokens up to and including it, with
    boundary tokens before the word (the windows a window model is trained on)."""
    return F.pad(idx, (size - 1, 0), value=BOUNDARY).unfold(1, size, 1)


class WindowModel(nn.Module):
    """Predicts the next token from a window of the block_size previous ones: idx (B, T) -> logits (B, V)."""

    windowed = True

    def forward(self, idx, targets=None, cls=None):
        logits = self.net(idx)  # (B, T) -> (B, V)
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return logits, loss


class SequenceModel(nn.Module):
    """Predicts every position of whole sequences at once: idx (B, T) -> logits (B, T, V); position t sees
    idx[:, :t+1] only. Targets at padding positions are IGNORE and take no part in the loss."""

    windowed = False

    @property
    def receptive_field(self) -> int | None:
        """How many tokens, up to and including its own, a position sees (None: all before it)."""
        return self.config.block_size

    def conditioning(self, n_classes: int, width: int, generator=None):
        """Global conditioning (the WaveNet paper's): one learned vector of `width` per class, added to the input or
        to every layer; built after the model's other layers, so that an unconditioned model's init is unchanged."""
        from makemore.scratch import Embedding

        self.cond = Embedding(n_classes, width, generator=generator) if n_classes else None

    def class_vector(self, cls, batch_size: int):
        """(B, width): each row's class vector; None for a model that is not conditioned."""
        if self.cond is None:
            return None
        if cls is None:
            raise ConfigError("cls", "required: this model is conditioned on a class")
        return self.cond(cls).view(batch_size, -1)

    def layer_classes(self, cls, batch_size: int, layers: int) -> list:
        """Per layer, (B, width / layers): the class vector cut in one part a layer; [None] * layers for a model
        that is not conditioned. The one way every conditioned family reads its class."""
        cond = self.class_vector(cls, batch_size)
        return [None] * layers if cond is None else list(cond.view(batch_size, layers, -1).unbind(1))

    @staticmethod
    def loss(logits, targets):
        if targets is None:
            return None
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)
