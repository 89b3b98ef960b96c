"""A GPT-style causal decoder over the whole word (as in nanoGPT / makemore's Transformer), with a key/value
cache for generation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from makemore.errors import ConfigError
from makemore.models.base import SequenceModel


@dataclass
class TransformerConfig:
    vocab_size: int = 27
    block_size: int = 0  # positions it can see (0: the longest item + 1)
    n_layers: int = 4
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    n_classes: int = 0  # global conditioning: a class vector added to every block's input


class CausalSelfAttention(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)

    def heads(self, x):  # (B, T, 3C) -> q, k, v, each (B, nh, T, hs)
        B, T, C3 = x.shape
        return (t.view(B, T, self.n_head, C3 // 3 // self.n_head).transpose(1, 2) for t in x.split(C3 // 3, dim=2))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.heads(self.qkv(x))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.proj(y))

    def step(self, x, kv, t: int):
        """Position t of every row: x (B, C) -> (B, C); its key and value go to kv (B, block_size, 2C) at t."""
        B, C = x.shape
        qkv = self.qkv(x)  # (B, 3C)
        kv[:, t] = qkv[:, C:]
        q = qkv[:, None, :C].view(B, 1, self.n_head, -1).transpose(1, 2)  # (B, nh, 1, hs)
        k, v = (kv[:, : t + 1, i * C : (i + 1) * C].view(B, t + 1, self.n_head, -1).transpose(1, 2)
                for i in (0, 1))  # (B, nh, t+1, hs): every position so far
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(B, C))


class Block(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(),
                                 nn.Linear(4 * config.n_embd, config.n_embd), nn.Dropout(config.dropout))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))

    def step(self, x, kv, t: int):
        x = x + self.attn.step(self.ln1(x), kv, t)
        return x + self.mlp(self.ln2(x))


class Transformer(SequenceModel):
    def __init__(self, config: TransformerConfig, generator: torch.Generator | None = None):
        super().__init__()
        if config.block_size < 1:
            raise ConfigError("block_size", "must be set: 0 means the longest item + 1, which training fills in")
        if config.n_embd % config.n_head:
            raise ConfigError("n_embd", f"{config.n_embd} is not a multiple of {{n_head}} ({config.n_head})",
                              mentions=("n_head",))
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size)
        with torch.no_grad():
            self.head.weight *= 0.1
        self.conditioning(config.n_classes, config.n_layers * config.n_embd, generator)

    @property
    def longest_word(self) -> int:
        """The most characters a word can have: the end token after them takes the last position."""
        return self.config.block_size - 1

    def forward(self, idx, targets=None, cls=None):
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} positions, but the model sees at most {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block, cond in zip(self.blocks, self.layer_classes(cls, B, self.config.n_layers)):
            x = block(x if cond is None else x + cond[:, None])
        logits = self.head(self.ln_f(x))  # (B, T, V)
        return logits, self.loss(logits, targets)

    def init_cache(self, batch_size: int, cls=None) -> KVCache:
        c = self.config
        kv = self.wte.weight.new_empty((batch_size, c.block_size, c.n_layers, 2 * c.n_embd))
        return KVCache(self, kv, self.layer_classes(cls, batch_size, c.n_layers))

    def step(self, tokens, cache: KVCache):
        """tokens (B,) at the next position -> logits (B, V) for the one after; a position's keys and values are
        computed once and kept."""
        x = self.wte(tokens) + self.wpe.weight[cache.t]  # (B, C)
        for layer, (block, cond) in enumerate(zip(self.blocks, cache.cond)):
            x = block.step(x if cond is None else x + cond, cache.kv[:, :, layer], cache.t)
        cache.t += 1
        return self.head(self.ln_f(x))


class KVCache:
    """Every block's keys and values of the positions so far, kv (B, block_size, n_layers, 2C), and the next
    position t."""

    def __init__(self, model, kv, cond: list):
        self.model, self.kv, self.cond, self.t = model, kv, cond, 0  # cond: per block, (B, C) or None
        self.buffer = kv  # (batch_size, ...): kv is its first rows

    def select(self, rows):
        # in the cache made for the whole batch, the positions so far only: no new cache of block_size positions
        # each time words end, nor when rows that shared a history spread out again (sample.SharedStep)
        self.buffer[: len(rows), : self.t] = self.kv[rows, : self.t]
        self.kv = self.buffer[: len(rows)]
        self.cond = [None if c is None else c[rows] for c in self.cond]
