"""Recurrent models over the whole word: a vanilla RNN (Elman), a GRU and an LSTM."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from makemore.data import IGNORE
from makemore.models.base import SequenceModel, dropout

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
CHUNK = 2048  # rows a GRU step computes at once in generation on a CPU: 20,000 at once took 1.8x the time on 2 cores


@dataclass
class RNNConfig:
    vocab_size: int = 27
    block_size: int = 0  # the longest sequence it trains on (0: the longest item + 1); it reads any length
    n_embd: int = 64
    n_hidden: int = 128
    n_layers: int = 1
    dropout: float = 0.0  # between layers, and on the last layer's output
    emb_dropout: float = 0.0  # on the embedded characters
    weight_drop: float = 0.0  # DropConnect on the hidden-to-hidden weights: one mask a batch, every position
    cell: str = "rnn"
    n_classes: int = 0  # global conditioning: a class vector added to the input at every position


@dataclass
class GRUConfig(RNNConfig):
    cell: str = "gru"


@dataclass
class LSTMConfig(RNNConfig):
    cell: str = "lstm"


def lengths_of(targets):
    """(B, T) targets -> (B,) each row's length as packing takes it: its targets, which are its first positions
    (as models.base.eval_batches reads them), at least 1."""
    return (targets != IGNORE).sum(1).clamp(min=1)


class Recurrent(SequenceModel):
    """Embedding -> torch's RNN / GRU / LSTM -> Linear. Its state is the cache: a step costs one cell update."""

    def __init__(self, config: RNNConfig, generator: torch.Generator | None = None):
        super().__init__()
        if config.cell not in CELLS:
            raise ValueError(f"unknown cell {config.cell!r}; valid cells: {', '.join(CELLS)}")  # set by the model's name
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.rnn = CELLS[config.cell](config.n_embd, config.n_hidden, config.n_layers, batch_first=True,
                                      dropout=config.dropout if config.n_layers > 1 else 0.0)
        self.head = nn.Linear(config.n_hidden, config.vocab_size)
        with torch.no_grad():
            self.head.weight *= 0.1  # a loss near ln(vocab_size) at init
        self.conditioning(config.n_classes, config.n_embd, generator)

    @property
    def receptive_field(self) -> None:
        return None  # the whole history

    def forward(self, idx, targets=None, cls=None):
        x = dropout(self.embedding(idx), self.config.emb_dropout, self.training)  # (B, T, E); p = 0 draws nothing
        cond = self.class_vector(cls, len(idx))
        if cond is not None:
            x = x + cond[:, None]
        # rows packed on a CPU; on a GPU the padding costs less than the host sync that packing's lengths need
        lengths = lengths_of(targets) if targets is not None and idx.device.type == "cpu" else None
        out = self.recur(x, lengths)  # (B, T, H)
        logits = self.head(dropout(out, self.config.dropout, self.training))  # (B, T, V)
        return logits, self.loss(logits, targets)

    def recur(self, x, lengths=None):
        """The RNN's outputs over x (B, T, E) -> (B, T, H). Given each row's length (a CPU tensor), the rows are
        packed (torch's PackedSequence): each time step computes only the rows still running, not the batch's
        padding, and the outputs past a row's length are zeros (no target reads them). The same losses (names,
        2,000 steps: val to 1e-7) in 10% less time on names and 22% less on 3,000 Mexican places (long items,
        padded to a batch's longest). In training with weight_drop, some of its hidden-to-hidden weights are
        dropped for the whole batch (AWD-LSTM's weight-drop: the recurrence itself is regularised, every step
        alike)."""
        T = x.shape[1]
        if lengths is not None:
            x = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        if self.training and self.config.weight_drop:
            dropped = {name: F.dropout(w, self.config.weight_drop) for name, w in self.rnn.named_parameters()
                       if name.startswith("weight_hh")}
            out, _ = functional_call(self.rnn, dropped, (x,))
        else:
            out, _ = self.rnn(x)
        if isinstance(out, PackedSequence):
            out = pad_packed_sequence(out, batch_first=True, total_length=T)[0]
        return out

    def init_cache(self, batch_size: int, cls=None):
        return RecurrentState(self, self.class_vector(cls, batch_size))

    def step(self, tokens, cache):
        if self.config.cell == "gru":
            return self.head(cache.gru_step(tokens))
        x = self.embedding(tokens)  # (B, E)
        if cache.cond is not None:
            x = x + cache.cond
        out, cache.state = self.rnn(x[:, None], cache.state)  # (B, 1, H)
        return self.head(out[:, 0])


class RecurrentState:
    """A generation's state: per layer, each row's hidden state (and an LSTM's cell). A GRU steps by hand, its
    first layer's input gates looked up per character (the embedding times the input weights, one row a
    character, computed once) instead of a matrix product a step (a quarter of the step's work at 64 x 192),
    CHUNK rows at a time; with the n-gram's automaton, sampling the default model went from 26k to 50k names/s."""

    def __init__(self, model, cond=None):
        self.model, self.state, self.cond = model, None, cond  # None: torch's zero initial state
        self.cond_gates = None
        rnn = model.rnn
        if model.config.cell == "gru":
            self.layers = [[getattr(rnn, f"{name}_l{i}") for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh")]
                           for i in range(rnn.num_layers)]
            with torch.no_grad():
                self.gates = model.embedding.weight @ rnn.weight_ih_l0.T + rnn.bias_ih_l0  # (V, 3H)
                self.cond_gates = None if cond is None else cond @ rnn.weight_ih_l0.T  # (B, 3H)

    def gru_step(self, tokens):  # (B,) -> (B, H): the last layer's output
        rnn, B = self.model.rnn, len(tokens)
        if self.state is None:
            self.state = self.gates.new_zeros(rnn.num_layers, B, rnn.hidden_size)
        state = torch.empty_like(self.state)
        chunk = CHUNK if tokens.device.type == "cpu" else max(B, 1)  # a GPU takes the batch at once
        for start in range(0, B, chunk):  # a chunk's gates (chunk, 3H) stay in the CPU's cache through the step
            rows = slice(start, start + chunk)
            x = self.gates.index_select(0, tokens[rows])  # index_select: 3x faster than indexing here
            if self.cond_gates is not None:
                x += self.cond_gates[rows]
            for i, (w_ih, b_ih, w_hh, b_hh) in enumerate(self.layers):
                if i:  # the layer below's output (torch applies no dropout between layers in eval mode)
                    x = torch.addmm(b_ih, state[i - 1, rows], w_ih.T)
                h = self.state[i, rows]
                gh = torch.addmm(b_hh, h, w_hh.T)  # (chunk, 3H): reset, update, new, as torch orders them
                H = h.shape[1]
                rz = torch.sigmoid_(x[:, : 2 * H].add_(gh[:, : 2 * H]))
                n = torch.tanh_(gh[:, 2 * H :].mul_(rz[:, :H]).add_(x[:, 2 * H :]))
                torch.lerp(n, h, rz[:, H:], out=state[i, rows])  # h' = (1 - z) n + z h
        self.state = state
        return state[-1]

    def select(self, rows):
        if isinstance(self.state, tuple):  # LSTM: (h, c), each (layers, B, H)
            self.state = tuple(s.index_select(1, rows) for s in self.state)
        elif self.state is not None:
            self.state = self.state.index_select(1, rows)
        if self.cond is not None:
            self.cond = self.cond[rows]
        if self.cond_gates is not None:
            self.cond_gates = self.cond_gates[rows]
