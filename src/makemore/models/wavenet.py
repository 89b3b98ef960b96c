"""The lecture's tree as dilated causal convolutions, and the WaveNet of the paper (van den Oord et al. 2016).

Both see whole sequences: one forward pass gives the logits of every position of every word. Both generate
with per-layer queues of past inputs (Paine et al. 2016, "Fast WaveNet"): a new character costs one step
per layer instead of a pass over the receptive field.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from makemore.data import BOUNDARY, IGNORE
from makemore.errors import ConfigError
from makemore.models.base import SequenceModel, levels_for
from makemore.scratch import BatchNorm1d, Embedding, Linear, Tanh


class CausalConv1d(nn.Module):
    """y[t] = concat(x[t-(k-1)d], ..., x[t-d], x[t]) @ W (+ b): a causal convolution of kernel k, dilation d.

    W is (k * C_in, C_out) with the taps oldest first, the layout of the lecture's Linear after
    FlattenConsecutive(k): a tree level's weight is this layer's weight, unchanged.
    """

    def __init__(self, c_in, c_out, kernel_size=2, dilation=1, bias=False, generator=None):
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        fan_in = kernel_size * c_in
        self.weight = nn.Parameter(torch.randn((fan_in, c_out), generator=generator) / fan_in**0.5)
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None

    @property
    def span(self) -> int:
        return (self.kernel_size - 1) * self.dilation  # how far back the oldest tap reaches

    def forward(self, x, pad: bool = True):
        """(B, T, C_in) -> (B, T, C_out), zero history before t = 0; with pad=False, the positions that have
        their whole history in x: (B, T - span, C_out)."""
        if pad:
            x = F.pad(x, (0, 0, self.span, 0))  # zeros before the first position
        T = x.shape[1] - self.span
        d = self.dilation
        taps = torch.cat([x[:, i * d : i * d + T] for i in range(self.kernel_size)], dim=-1)  # (B, T, k*C_in)
        out = taps @ self.weight
        return out if self.bias is None else out + self.bias

    def empty_queue(self, batch_size: int) -> torch.Tensor:
        return self.weight.new_zeros(batch_size, self.span, self.weight.shape[0] // self.kernel_size)

    def step(self, x, queue, t: int):
        """Position t: x (B, C_in) -> y (B, C_out). queue (B, span, C_in) is a ring of the last span inputs,
        the input of position t - j at slot (t - j) % span; x takes the oldest one's slot."""
        d, span = self.dilation, self.span
        taps = [queue[:, (t - (self.kernel_size - 1 - i) * d) % span] for i in range(self.kernel_size - 1)]
        out = torch.cat(taps + [x], dim=-1) @ self.weight  # (B, k*C_in) @ (k*C_in, C_out)
        queue[:, t % span] = x
        return out if self.bias is None else out + self.bias


@dataclass
class ConvCache:
    """What cached generation keeps between steps: one queue per convolution, the class embeddings, and the
    position of the next step."""

    model: nn.Module  # the module whose step() reads this cache
    queues: list
    cond: list
    t: int = 0

    def select(self, rows):
        """Keep only these rows of the batch (words that have ended leave it)."""
        self.queues = [q[rows] for q in self.queues]
        self.cond = [None if c is None else c[rows] for c in self.cond]


# ----------------------------------------------------------------------------- the lecture's tree as a convolution


@dataclass
class ConvTreeConfig:
    vocab_size: int = 27
    block_size: int = 8  # the receptive field: 2 ** levels
    n_embd: int = 24
    n_hidden: int = 128
    n_classes: int = 0  # global conditioning: a class vector added to every level, before its BatchNorm


class ConvTree(SequenceModel):
    """Embedding, then per level l: CausalConv1d(kernel 2, dilation 2**l) + BatchNorm + Tanh; then Linear.

    The input is left-padded with block_size - 1 boundary tokens and the convolutions are unpadded, so each
    position sees exactly the lecture's window: with the same weights, position t's logits are the tree's
    logits for the window that ends at t.
    """

    def __init__(self, config: ConvTreeConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        levels = levels_for(config.block_size)
        self.embedding = Embedding(config.vocab_size, config.n_embd, generator=generator)
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        self.tanhs = nn.ModuleList(Tanh() for _ in range(levels))  # modules, so that hooks can see each level
        fan_in = config.n_embd
        for level in range(levels):  # the tree's init order: each level's weight, then the head
            self.convs.append(CausalConv1d(fan_in, config.n_hidden, 2, 2**level, generator=generator))
            self.norms.append(BatchNorm1d(config.n_hidden))
            fan_in = config.n_hidden
        self.head = Linear(config.n_hidden, config.vocab_size, generator=generator)
        with torch.no_grad():
            self.head.weight *= 0.1
        self.conditioning(config.n_classes, levels * config.n_hidden, generator)

    def forward(self, idx, targets=None, cls=None):
        pad = self.config.block_size - 1
        x = self.embedding(F.pad(idx, (pad, 0), value=BOUNDARY))  # (B, T + pad, C)
        mask = None  # the positions that enter BatchNorm's batch statistics: none past a word's end
        if self.training and targets is not None:
            mask = F.pad(targets != IGNORE, (pad, 0), value=True)  # (B, T + pad)
        for conv, norm, tanh, cond in zip(self.convs, self.norms, self.tanhs, self.layer_classes(cls, len(idx), len(self.convs))):
            x = conv(x, pad=False)  # (B, T', H): each level drops the first `dilation` positions
            if cond is not None:
                x = x + cond[:, None]
            mask = None if mask is None else mask[:, conv.dilation :]
            x = tanh(norm(x, mask))
        logits = self.head(x)  # (B, T, V)
        return logits, self.loss(logits, targets)

    @classmethod
    def from_hierarchical(cls, tree) -> ConvTree:
        """The conv form of a trained `hierarchical` model: the same weights and running statistics."""
        c = tree.config
        model = cls(ConvTreeConfig(c.vocab_size, c.block_size, c.n_embd, c.n_hidden))
        layers = tree.net.layers  # Embedding, (FlattenConsecutive, Linear, BatchNorm1d, Tanh) per level, Linear
        state = {"embedding.weight": layers[0].weight, "head.weight": layers[-1].weight, "head.bias": layers[-1].bias}
        for level in range(len(model.convs)):
            linear, norm = layers[2 + 4 * level], layers[3 + 4 * level]
            state[f"convs.{level}.weight"] = linear.weight
            for key, value in norm.state_dict().items():
                state[f"norms.{level}.{key}"] = value
        model.load_state_dict({k: v.detach() for k, v in state.items()})
        return model.to(layers[0].weight.device).train(tree.training)

    def init_cache(self, batch_size: int, cls=None) -> ConvCache:
        classes = self.layer_classes(cls, batch_size, len(self.convs))
        boundary = torch.full((batch_size,), BOUNDARY, dtype=torch.long, device=self.head.weight.device)
        if classes[0] is None:  # the padding's state is the same for every row: stepped once, then copied
            boundary = boundary[:1]
        cache = ConvCache(self, [conv.empty_queue(len(boundary)) for conv in self.convs],
                          [None if c is None else c[: len(boundary)] for c in classes])
        for _ in range(self.config.block_size - 1):  # the left padding of forward(), stepped into the queues
            self.step(boundary, cache)
        cache.queues = [q.expand(batch_size, -1, -1).contiguous() for q in cache.queues]
        cache.cond = classes
        return cache

    def step(self, tokens, cache: ConvCache):
        """tokens (B,) at the next position -> logits (B, V) for the one after."""
        x = self.embedding(tokens)  # (B, C)
        for conv, norm, tanh, queue, cond in zip(self.convs, self.norms, self.tanhs, cache.queues, cache.cond):
            x = conv.step(x, queue, cache.t)
            x = tanh(norm(x if cond is None else x + cond))
        cache.t += 1
        return self.head(x)


# ----------------------------------------------------------------------------- the paper's WaveNet


NORMS = ("batch", "layer", "none")


class Norm(nn.Module):
    """BatchNorm (over the valid positions), LayerNorm or nothing, chosen by name."""

    def __init__(self, kind: str, dim: int):
        super().__init__()
        if kind not in NORMS:
            raise ConfigError("norm", f"expected one of {', '.join(NORMS)}, got {kind!r}")
        self.kind = kind
        self.norm = {"batch": lambda: BatchNorm1d(dim), "layer": lambda: nn.LayerNorm(dim), "none": nn.Identity}[kind]()

    def forward(self, x, mask=None):
        return self.norm(x, mask) if self.kind == "batch" else self.norm(x)


class GatedResidualBlock(nn.Module):
    """z = tanh(W_f * x + V_f h) * sigmoid(W_g * x + V_g h); x + 1x1(z) to the next block, 1x1(z) to the skips."""

    def __init__(self, n_embd, n_skip, kernel_size, dilation, norm, dropout=0.0, generator=None):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.conv = CausalConv1d(n_embd, 2 * n_embd, kernel_size, dilation, bias=True, generator=generator)
        self.norm = Norm(norm, 2 * n_embd)
        self.residual = Linear(n_embd, n_embd, generator=generator)
        self.skip = Linear(n_embd, n_skip, generator=generator)
        self.tanh, self.sigmoid = Tanh(), nn.Sigmoid()  # modules, so that hooks can see the gate's halves

    def gate(self, h, cond, mask=None):
        if cond is not None:
            h = h + cond  # global conditioning: the class's embedding, the same at every position
        f, g = self.norm(h, mask).chunk(2, dim=-1)
        return self.tanh(f) * self.sigmoid(g)

    def forward(self, x, cond=None, mask=None):  # x (B, T, C) -> (B, T, C), skip (B, T, S)
        z = self.dropout(self.gate(self.conv(x), cond, mask))
        return x + self.residual(z), self.skip(z)

    def step(self, x, queue, t, cond=None):  # x (B, C) -> (B, C), skip (B, S)
        z = self.gate(self.conv.step(x, queue, t), cond)
        return x + self.residual(z), self.skip(z)


@dataclass
class WaveNetConfig:
    vocab_size: int = 27
    block_size: int = 0  # the receptive field to reach; 0: the longest item + 1, so every position sees the whole word
    n_embd: int = 48  # residual channels
    n_skip: int = 128  # skip channels
    n_stacks: int = 1  # stacks of dilations 1, 2, ..., 2**(layers - 1)
    kernel_size: int = 2
    norm: str = "batch"  # batch | layer | none
    n_classes: int = 0  # global conditioning: one embedding per class, added to every layer
    dropout: float = 0.0  # on each layer's gated output, in training


class WaveNet(SequenceModel):
    def __init__(self, config: WaveNetConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        if config.block_size < 1:
            raise ConfigError("block_size", "must be set: 0 means the longest item + 1, which training fills in")
        if config.kernel_size < 2:
            raise ConfigError("kernel_size", f"the WaveNet needs 2 or more, got {config.kernel_size}")
        if config.n_stacks < 1:
            raise ConfigError("n_stacks", f"the WaveNet needs 1 or more, got {config.n_stacks}")
        k, stacks = config.kernel_size, config.n_stacks
        layers = 1
        while stacks * (k**layers - 1) + 1 < config.block_size:  # receptive field: stacks * (k**layers - 1) + 1
            layers += 1
        dilations = [k**i for i in range(layers)] * stacks
        self.embedding = Embedding(config.vocab_size, config.n_embd, generator=generator)
        self.blocks = nn.ModuleList(
            GatedResidualBlock(config.n_embd, config.n_skip, k, d, config.norm, config.dropout, generator)
            for d in dilations
        )
        self.conditioning(config.n_classes, len(dilations) * 2 * config.n_embd, generator)
        self.head1 = Linear(config.n_skip, config.n_skip, generator=generator)
        self.head2 = Linear(config.n_skip, config.vocab_size, generator=generator)
        with torch.no_grad():
            self.head2.weight *= 0.1  # less confident at init: a loss near ln(vocab_size)

    @property
    def receptive_field(self) -> int:
        return sum(block.conv.span for block in self.blocks) + 1

    def forward(self, idx, targets=None, cls=None):
        B, T = idx.shape
        x = self.embedding(idx)  # (B, T, C)
        mask = (targets != IGNORE) if self.training and targets is not None else None
        skips = 0
        for block, cond in zip(self.blocks, self.layer_classes(cls, B, len(self.blocks))):
            x, skip = block(x, None if cond is None else cond[:, None], mask)
            skips = skips + skip  # (B, T, S)
        logits = self.head2(F.relu(self.head1(F.relu(skips))))  # (B, T, V)
        return logits, self.loss(logits, targets)

    def init_cache(self, batch_size: int, cls=None) -> ConvCache:
        return ConvCache(self, [block.conv.empty_queue(batch_size) for block in self.blocks],
                         self.layer_classes(cls, batch_size, len(self.blocks)))

    def step(self, tokens, cache: ConvCache):
        x = self.embedding(tokens)  # (B, C)
        skips = 0
        for block, queue, cond in zip(self.blocks, cache.queues, cache.cond):
            x, skip = block.step(x, queue, cache.t, cond)
            skips = skips + skip
        cache.t += 1
        return self.head2(F.relu(self.head1(F.relu(skips))))
