"""The lecture's layers, its hierarchical model and the conv tree in Flax NNX, with weight conversion to and
from the PyTorch models of the same names."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

from makemore.data import BOUNDARY, IGNORE
from makemore.models.base import levels_for


class Linear(nnx.Module):
    def __init__(self, fan_in: int, fan_out: int, bias: bool = True):
        self.weight = nnx.Param(jnp.zeros((fan_in, fan_out)))  # (fan_in, fan_out), as the lecture's
        self.bias = nnx.Param(jnp.zeros(fan_out)) if bias else None

    def __call__(self, x):
        out = x @ self.weight[...]
        return out if self.bias is None else out + self.bias[...]


class BatchNorm1d(nnx.Module):
    """The lecture's BatchNorm: normalises with the unbiased batch variance over every dimension but the last;
    mask (B, T) keeps padding out of the statistics, as the torch layer's does."""

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1):
        self.eps, self.momentum = eps, momentum
        self.gamma = nnx.Param(jnp.ones(dim))
        self.beta = nnx.Param(jnp.zeros(dim))
        self.running_mean = nnx.BatchStat(jnp.zeros(dim))
        self.running_var = nnx.BatchStat(jnp.ones(dim))
        self.training = True

    def __call__(self, x, mask=None):
        if self.training:
            if mask is None:
                dims = tuple(range(x.ndim - 1))
                mean = x.mean(dims)
                var = x.var(dims, ddof=1)
            else:
                m = mask[..., None].astype(x.dtype)  # (B, T, 1)
                n = m.sum()
                mean = (x * m).sum((0, 1)) / n
                var = ((x - mean) ** 2 * m).sum((0, 1)) / (n - 1)
            self.running_mean[...] = (1 - self.momentum) * self.running_mean[...] + self.momentum * mean
            self.running_var[...] = (1 - self.momentum) * self.running_var[...] + self.momentum * var
        else:
            mean, var = self.running_mean[...], self.running_var[...]
        return self.gamma[...] * (x - mean) / jnp.sqrt(var + self.eps) + self.beta[...]


class Embedding(nnx.Module):
    def __init__(self, num: int, dim: int):
        self.weight = nnx.Param(jnp.zeros((num, dim)))

    def __call__(self, idx):
        return self.weight[...][idx]  # (B, T) -> (B, T, C)


class FlattenConsecutive(nnx.Module):
    def __init__(self, n: int):
        self.n = n

    def __call__(self, x):
        B, T, C = x.shape
        x = x.reshape(B, T // self.n, C * self.n)  # (B, T/n, C*n)
        return x[:, 0] if T == self.n else x


class Tanh(nnx.Module):
    def __call__(self, x):
        return jnp.tanh(x)


class Hierarchical(nnx.Module):
    windowed = True

    def __init__(self, config):
        self.config = config
        layers = [Embedding(config.vocab_size, config.n_embd)]
        fan_in = config.n_embd
        for _ in range(levels_for(config.block_size)):
            layers += [FlattenConsecutive(2), Linear(fan_in * 2, config.n_hidden, bias=False),
                       BatchNorm1d(config.n_hidden), Tanh()]
            fan_in = config.n_hidden
        layers.append(Linear(fan_in, config.vocab_size))
        self.net = nnx.Sequential(*layers)

    def __call__(self, idx, targets=None):
        logits = self.net(idx)  # (B, T) -> (B, V)
        return logits, None if targets is None else cross_entropy(logits, targets)


class ConvTree(nnx.Module):
    """The tree as dilated causal convolutions over whole words (makemore.models.wavenet.ConvTree)."""

    windowed = False

    def __init__(self, config):
        self.config = config
        levels = levels_for(config.block_size)
        self.embedding = Embedding(config.vocab_size, config.n_embd)
        fan_in = config.n_embd
        convs, norms = [], []
        for _ in range(levels):
            convs.append(Linear(2 * fan_in, config.n_hidden, bias=False))  # kernel 2: (2 * C_in, C_out), oldest tap first
            norms.append(BatchNorm1d(config.n_hidden))
            fan_in = config.n_hidden
        self.convs, self.norms = nnx.List(convs), nnx.List(norms)
        self.head = Linear(config.n_hidden, config.vocab_size)

    def __call__(self, idx, targets=None):
        pad = self.config.block_size - 1
        x = self.embedding(jnp.pad(idx, ((0, 0), (pad, 0)), constant_values=BOUNDARY))  # (B, T + pad, C)
        mask = None
        if targets is not None and self.norms[0].training:
            mask = jnp.pad(targets != IGNORE, ((0, 0), (pad, 0)), constant_values=True)
        for level, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            d = 2**level
            x = conv(jnp.concatenate([x[:, :-d], x[:, d:]], axis=-1))  # (B, T' - d, C_out)
            mask = None if mask is None else mask[:, d:]
            x = jnp.tanh(norm(x, mask))
        logits = self.head(x)  # (B, T, V)
        return logits, None if targets is None else cross_entropy(logits, targets)


MODELS = {"hierarchical": Hierarchical, "conv": ConvTree}


def cross_entropy_sum(logits, targets):
    """(summed cross-entropy, count) over the targets that are not IGNORE."""
    logits = logits.reshape(-1, logits.shape[-1])
    targets = targets.reshape(-1)
    valid = targets != IGNORE
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(logp, jnp.where(valid, targets, 0)[:, None], axis=1)[:, 0]
    return -(picked * valid).sum(), valid.sum()


def cross_entropy(logits, targets):
    """Mean over the targets that are not IGNORE, as torch's F.cross_entropy(ignore_index=IGNORE)."""
    total, count = cross_entropy_sum(logits, targets)
    return total / count


def set_training(model, training: bool):
    for _, module in nnx.iter_modules(model):
        if isinstance(module, BatchNorm1d):
            module.training = training


# ----------------------------------------------------------------------------- conversion


def key_of(path) -> str:
    return ".".join(str(p) for p in path)


def to_jax(name: str, torch_model):
    """The JAX twin of a PyTorch `hierarchical` or `conv` model, with its weights and running statistics."""
    model = MODELS[name](torch_model.config)
    state = torch_model.state_dict()
    flat = nnx.to_flat_state(nnx.state(model))
    missing = [key_of(p) for p, _ in flat if key_of(p) not in state]
    if missing:
        raise ValueError(f"no torch weights for {missing}")
    for path, variable in flat:
        variable.set_value(jnp.asarray(state[key_of(path)].detach().cpu().numpy()))
    set_training(model, torch_model.training)
    return model


def torch_state(model) -> dict:
    """The JAX model's weights and statistics as a PyTorch state_dict."""
    return {key_of(p): torch.from_numpy(np.array(v.get_value())) for p, v in nnx.to_flat_state(nnx.state(model))}


def to_torch(model, torch_model):
    """Load the JAX model's weights into the PyTorch model of the same config; returns it."""
    torch_model.load_state_dict(torch_state(model))
    return torch_model
