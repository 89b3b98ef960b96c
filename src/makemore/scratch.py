"""The lecture's layers, with their math written by hand.

They are nn.Modules only for the plumbing (parameters(), .to(device), state_dict); every forward is the
lecture's arithmetic. Initialisation draws from the given torch.Generator (or the global one) in the
lecture's order, so a model built after torch.manual_seed(42) has the lecture's exact weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Linear(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, bias: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        # weight is (fan_in, fan_out), the transpose of nn.Linear's, as in the lecture; kaiming-like init
        self.weight = nn.Parameter(torch.randn((fan_in, fan_out), generator=generator) / fan_in**0.5)
        self.bias = nn.Parameter(torch.zeros(fan_out)) if bias else None

    def forward(self, x):
        out = x @ self.weight  # (..., fan_in) @ (fan_in, fan_out) -> (..., fan_out)
        if self.bias is not None:
            out = out + self.bias
        return out


class BatchNorm1d(nn.Module):
    """Normalises over every dimension but the last, for (B, C) and (B, T, C) input.

    The lecture normalises with the unbiased batch variance (torch.var's default); torch.nn.BatchNorm1d
    uses the biased one. Both update the running variance with the unbiased one.
    """

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1, unbiased: bool = True):
        super().__init__()
        self.eps, self.momentum, self.unbiased = eps, momentum, unbiased
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.synced = False  # under torchrun the trainer sets it: statistics of the global batch, over all ranks

    def forward(self, x, mask=None):
        """mask (B, T), for (B, T, C) input: only the positions where it is True enter the batch statistics
        (padding of whole-sequence batches must not)."""
        if self.training:
            if self.synced:  # each rank holds a share of the batch: sums over all of them, as SyncBatchNorm does
                all_reduce = SumOverRanks.apply
                dims = tuple(range(x.ndim - 1))
                m = torch.ones_like(x[..., :1]) if mask is None else mask.unsqueeze(-1).to(x.dtype)
                n = all_reduce(m.sum())
                xmean = all_reduce((x * m).sum(dims)) / n
                xvar = all_reduce(((x - xmean) ** 2 * m).sum(dims)) / (n - 1 if self.unbiased else n)
            elif mask is None:
                dims = tuple(range(x.ndim - 1))  # (0,) for (B, C); (0, 1) for (B, T, C)
                xmean = x.mean(dims, keepdim=True)
                xvar = x.var(dims, keepdim=True, unbiased=self.unbiased)
                n = x.numel() // x.shape[-1]
            else:  # weights rather than indexing: no gather and scatter in the backward pass
                m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
                n = m.sum()
                xmean = (x * m).sum((0, 1)) / n
                xvar = ((x - xmean) ** 2 * m).sum((0, 1)) / (n - 1 if self.unbiased else n)
        else:
            xmean, xvar = self.running_mean, self.running_var
        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)
        out = self.gamma * xhat + self.beta
        if self.training:
            with torch.no_grad():
                var = xvar if self.unbiased else xvar * n / (n - 1)  # torch keeps the unbiased one
                self.running_mean.copy_((1 - self.momentum) * self.running_mean + self.momentum * xmean.reshape(-1))
                self.running_var.copy_((1 - self.momentum) * self.running_var + self.momentum * var.reshape(-1))
        return out


class SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over torchrun's ranks; its gradient is the sum of theirs (each rank's loss uses it)."""

    @staticmethod
    def forward(ctx, x):
        import torch.distributed as dist

        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        return SumOverRanks.forward(ctx, grad)


class Tanh(nn.Module):
    def forward(self, x):
        return torch.tanh(x)


class Embedding(nn.Module):
    def __init__(self, num_embeddings: int, embedding_dim: int, generator: torch.Generator | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn((num_embeddings, embedding_dim), generator=generator))

    def forward(self, idx):
        # The lecture's weight[idx]. Its backward, on the CPU with several threads, adds a batch of 32,768 values
        # or more with atomics, in whatever order the threads meet (the WaveNet's whole-word batches are that
        # large), so runs differed in the last bits; embedding's backward adds each row's gradients in order.
        return F.embedding(idx, self.weight)  # (B, T) -> (B, T, C)


class FlattenConsecutive(nn.Module):
    """(B, T, C) -> (B, T//n, C*n): concatenates n consecutive positions.

    When exactly one group is left the middle dimension is dropped, giving (B, C*n). The lecture squeezed
    dimension 1 whenever it had size 1, which breaks trees of more than 3 levels (nn-zero-to-hero #23).
    """

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x):
        B, T, C = x.shape
        if T % self.n:
            raise ValueError(f"FlattenConsecutive({self.n}) needs a length divisible by {self.n}, got {T}")
        x = x.view(B, T // self.n, C * self.n)  # (B, T/n, C*n)
        if T == self.n:
            x = x.squeeze(1)  # (B, C*n)
        return x

    def extra_repr(self):
        return f"n={self.n}"


class Sequential(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
