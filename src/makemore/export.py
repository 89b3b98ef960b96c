"""A trained run outside Python: its step model as ONNX, its vocabulary and sampling defaults as JSON, and for
the default recipe's model the n-gram's counts as JSON, in a folder of its own (see EXPORT_README).

    makemore export RUN --format onnx --out DIR      or      run.export(DIR)

The step model: the last character (B,) int64 and the state in, the next character's log-probabilities (B, V)
and the new state out. A recurrent network's state is its hidden state (n_layers, B, n_hidden) float32 (an LSTM
has a second, the cell); the WaveNet's is its blocks' queues of past inputs (QueueStep); a window model's and
the lecture's tree's are the characters written before, as many as it reads (TokensStep); the Transformer's are
its keys and values at a fixed size and the position (TransformerStep); an n-gram alone travels as its tables
(ngram.json), with no step. Generation starts from the boundary token and the state at the start, feeds each
drawn character back, and ends at the boundary. An ensemble and a conditioned run are not exported: a one-line
error says so.
`--web` writes a page instead, for the recurrent families and the default recipe's model.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from makemore.data import BOUNDARY
from makemore.errors import UserError
from makemore.files import write_atomic
from makemore.models.transformer import Transformer
from makemore.models.wavenet import ConvCache, WaveNet
from makemore.style import Style

FORMAT = "makemore-export/1"
WEB_FORMAT = "makemore-web/1"
WEB = Path(__file__).parent / "static" / "web"  # the exported page's own files
RECURRENT = ("rnn", "gru", "lstm")
EXPORTABLE = ("bigram", "mlp", "hierarchical", "conv", "wavenet", *RECURRENT, "transformer", "ngram", "gru+ngram")
EXPORT_README = """# {name}: an exported makemore run

Made by `makemore export` from the run `{run}` ({model}; val {val}).

## Files

{step_file}
- `makemore.json`: `vocab` (the characters by index, in Unicode's composed form, NFC, as makemore read the list:
  compose a prefix so too; index {boundary}, written "", is the boundary token, which starts and ends every
  name), the state's shape, the sampling defaults (`max_len`, `temperature`, and `style`: how
  the list writes its items, below), and for the default recipe's model (and an n-gram alone) the n-gram's `share`.
{ngram_files}
## Generating a name

Start with `token = [{boundary}]` and the state at the start. At each step run the model, turn `logprobs` into the
next character's distribution (with the n-gram mixed in, if there is one), divide the log-probabilities by the
temperature, draw a character, and feed it back with `new_state`. A drawn boundary token ends the name; a name
longer than `max_len` characters is drawn again. So is a name that writes what no item of the list does, where `style`
is not null, as `makemore sample` does: each character's kind is `kinds[ch]` (the start and the end of a name are
the kinds "start" and "end"); every pair of kinds side by side must be one of `pairs`; where a pair is one of
`contexts` ([kind, kind, [before, ...]]), the one or two characters before its second character (one at the start
of a name) must be one of its `before`; no character of `finals` before a character whose kind is "upper",
"lower" or "letter"; no character of `never_first` first in the name or after a character of kind "space"; no
character of `most` more often than its count; and each pair of `brackets` closed, never below zero.
"""
NGRAM_README = """- `ngram.json`: an interpolated Kneser-Ney n-gram of `context` characters, `discount` D, and `orders`: for
  k = 0 .. context, the rows `[c_1, ..., c_k, w, count]` of order k (k characters of context, oldest first, then
  the next character w). The top order counts occurrences; the lower orders count continuations.

### The n-gram and the mixture

The n-gram's context at each step is the last `context` characters written, with boundary tokens before the
name ({boundary} repeated). Let P_-1(w) = 1/V. For k = 0 .. context, with h the last k characters of the
context: if order k has rows for h, with c(h) the sum of their counts and N(h) their number,
P_k(w) = (max(c(h w) - D, 0) + D * N(h) * P_k-1(w)) / c(h); otherwise P_k = P_k-1. The n-gram's distribution
is P_context. The run's distribution is log((1 - share) * exp(logprobs) + share * P_context).
"""


class Step(nn.Module):
    """A recurrent model's step, as exported: (token (B,), state) -> (log-probabilities (B, V), new state)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, token, *state):
        x = self.model.embedding(token)[:, None]  # (B, 1, E)
        out, new = self.model.rnn(x, state if len(state) == 2 else state[0])
        logprobs = torch.log_softmax(self.model.head(out[:, 0]), dim=-1)  # (B, V)
        return (logprobs, *new) if isinstance(new, tuple) else (logprobs, new)


class Networks(nn.Module):
    """A run's several networks (gru+ngram's, networks > 1) and their weights among themselves, exported as one."""

    def __init__(self, networks, weights):
        super().__init__()
        self.networks, self.weights = nn.ModuleList(networks), weights
        self.config = networks[0].config


class MixedStep(nn.Module):
    """Several recurrent networks' step as one: (token (B,), state (k * n_layers, B, H)...) -> (their distributions
    mixed at their weights, as log-probabilities (B, V), the new states stacked alike)."""

    def __init__(self, networks: Networks):
        super().__init__()
        self.steps = nn.ModuleList(Step(n) for n in networks.networks)
        self.layers = networks.config.n_layers
        self.register_buffer("log_weights", networks.weights.detach().float().log())

    def forward(self, token, *state):
        L = self.layers
        outs = [step(token, *(s[i * L:(i + 1) * L] for s in state)) for i, step in enumerate(self.steps)]
        logprobs = torch.logsumexp(torch.stack([out[0] for out in outs]) + self.log_weights[:, None, None], dim=0)
        return (logprobs, *(torch.cat([out[1 + j] for out in outs]) for j in range(len(state))))


class TokensStep(nn.Module):
    """A window's step, as exported: (token (B,), tokens (B, block_size - 1)) -> (log-probabilities (B, V), new
    tokens). The state is the block_size - 1 characters written before the token, boundary tokens before the word:
    what a window model reads, and what the lecture's tree as convolutions reads (its own padding is boundary
    tokens)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.windowed = model, model.windowed

    def forward(self, token, tokens):
        seq = torch.cat([tokens, token[:, None]], dim=1)  # (B, block_size)
        logits = self.model(seq)[0] if self.windowed else self.model(seq)[0][:, -1]  # (B, V)
        return torch.log_softmax(logits, dim=-1), seq[:, 1:]


class QueueStep(nn.Module):
    """The WaveNet's step, as exported: (token (B,), queue_0 ... queue_L-1) -> (log-probabilities, new queues).
    Queue l (B, span_l, C) holds block l's last span_l inputs, oldest first, zeros at the start: the model's own
    ring buffer read at position 0, then rolled by one, so that no step depends on its position."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, token, *queues):
        cache = ConvCache(self.model, [q.clone() for q in queues], [None] * len(queues), t=0)
        logits = self.model.step(token, cache)  # reads slots span - j, writes the token's input to slot 0
        return (torch.log_softmax(logits, dim=-1), *(q.roll(-1, dims=1) for q in cache.queues))


class TransformerStep(nn.Module):
    """The Transformer's step, as exported: (token (B,), position (1,), kv (B, block_size, n_layers, 2C)) ->
    (log-probabilities (B, V), position + 1, new kv). kv holds every block's keys and values of the positions
    before, as the model's own cache does, but at a fixed size: the token's go in at `position`, and attention
    is masked to the positions up to it (zeros at the start, so no step's shape depends on its position)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, token, position, kv):
        m, T, C = self.model, self.model.config.block_size, self.model.config.n_embd
        heads = m.config.n_head
        at = (torch.arange(T, device=token.device) == position).to(kv.dtype)[None, :, None]  # (1, T, 1)
        seen = (torch.arange(T, device=token.device) <= position)[None, None, None, :]  # (1, 1, 1, T)
        x = m.wte(token) + m.wpe(position)  # (B, C)
        layers = []
        for layer, block in enumerate(m.blocks):
            qkv = block.attn.qkv(block.ln1(x))  # (B, 3C)
            kept = kv[:, :, layer] * (1 - at) + qkv[:, None, C:] * at  # (B, T, 2C)
            layers.append(kept)
            q = qkv[:, :C].reshape(-1, heads, 1, C // heads)  # (B, nh, 1, hs)
            k, v = (kept[..., i * C:(i + 1) * C].reshape(-1, T, heads, C // heads).transpose(1, 2) for i in (0, 1))
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=seen)  # (B, nh, 1, hs)
            x = x + block.attn.proj(y.transpose(1, 2).reshape(-1, C))
            x = x + block.mlp(block.ln2(x))
        logits = m.head(m.ln_f(x))
        return torch.log_softmax(logits, dim=-1), position + 1, torch.stack(layers, dim=2)


STEP_FILE = """- `step.onnx`: one step of the network. Inputs: `token` (B,) int64, the last character, and its state:
  {inputs}. Output: `logprobs` (B, V) float32, the log-probabilities of the next character, and the new state."""
NO_STEP = """- No `step.onnx`: the run is an n-gram alone. Its distribution is the n-gram's (`share` 1, below)."""


def network_of(model, model_name: str):
    """The network to export and the n-gram beside it (None for a model alone; no network for an n-gram alone)."""
    if model_name not in EXPORTABLE:
        raise UserError(f"export: the {model_name} family cannot be exported (those that can: {', '.join(EXPORTABLE)})")
    if getattr(model.config, "n_classes", 0):
        raise UserError("export: a conditioned run cannot be exported yet")
    if model_name.endswith("+ngram"):
        networks = list(model.members[:-1])
        network = networks[0] if len(networks) == 1 else Networks(networks, model.network_weights)
        return network, model.members[-1], float(model.share)
    if model_name == "ngram":
        return None, model, 1.0
    return model, None, None


def ngram_tables(ngram) -> dict:
    V, context = ngram.config.vocab_size, ngram.config.block_size
    orders = []
    for k in range(context + 1):
        pairs, counts = getattr(ngram, f"pairs{k}").tolist(), getattr(ngram, f"counts{k}").tolist()
        rows = []
        for pair, count in zip(pairs, counts):
            tokens = []
            for _ in range(k + 1):  # pair = (c_1 ... c_k w) in base V, the oldest character first
                pair, token = divmod(pair, V)
                tokens.append(token)
            rows.append([*reversed(tokens), int(count) if count == int(count) else count])
        orders.append(rows)
    return {"context": context, "discount": ngram.config.discount, "orders": orders}


def export_onnx(model, model_name: str, vocab, folder: Path, out: Path, *, max_len: int, val: float | None,
                style: Style | None = None):
    """Write the export folder out (which must not exist): step.onnx, makemore.json, README.md and, for the
    default recipe's model, ngram.json; all or nothing."""
    network, ngram, share = network_of(model, model_name)
    if network is None:  # an n-gram alone: its tables are the export
        with new_folder(out) as work:
            write_meta(work, model_name, vocab, None, max_len, share, ngram, NO_STEP, folder, out, val, style)
        return Path(out)
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise UserError("export: the onnx package is missing: pip install 'makemore[export]'") from None
    step, example, state, inputs = step_of(network)
    with new_folder(out) as work:
        was_training = network.training
        network.eval()
        outputs = ["logprobs", *(f"new_{n}" for n in state["names"])]
        axes = {name: {0: "batch"} for name in ["token", "logprobs"]}
        for name in state["names"]:  # the batch, and a token state's length
            if name != "position":
                axes[name] = axes[f"new_{name}"] = {1: "batch"} if state["kind"] == "recurrent" else {0: "batch"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's advice on batch sizes: the state is an input, as it asks
            torch.onnx.export(step.cpu(), (torch.zeros(2, dtype=torch.long), *example), work / "step.onnx",
                              input_names=["token", *state["names"]], output_names=outputs, dynamic_axes=axes,
                              dynamo=False)
        network.train(was_training)
        write_meta(work, model_name, vocab, state, max_len, share, ngram, STEP_FILE.format(inputs=inputs), folder,
                   out, val, style)
    return Path(out)


def web_weights(network) -> dict:
    """A recurrent network's weights as model.js holds them: float32, little-endian, base64."""
    return {name: {"shape": list(t.shape), "data": base64.b64encode(t.detach().float().cpu().contiguous().numpy()
                                                                     .astype("<f4").tobytes()).decode()}
            for name, t in network.state_dict().items() if name.split(".")[0] in ("embedding", "rnn", "head")}


def sampling(max_len: int, style: Style | None) -> dict:
    """The sampling defaults an export carries: the longest name, the temperature, and how the list writes its
    items (style.Style.table(): a name that does not is drawn again; null where that forbids nothing)."""
    return {"max_len": max_len, "temperature": 1.0, "style": None if style is None else style.table()}


def write_meta(work: Path, model_name, vocab, state, max_len, share, ngram, step_file, folder, out, val, style):
    """makemore.json, the n-gram's ngram.json (if any) and README.md."""
    meta = {"format": FORMAT, "model": model_name, "vocab": ["", *vocab.chars], "boundary": BOUNDARY,
            "state": state, "sampling": sampling(max_len, style), "share": share}
    write_atomic(work / "makemore.json", json.dumps(meta, ensure_ascii=False))
    if ngram is not None:
        write_atomic(work / "ngram.json", json.dumps(ngram_tables(ngram)))
    readme = EXPORT_README.format(
        name=Path(out).name, run=folder, model=model_name, val="?" if val is None else f"{val:.4f}",
        boundary=BOUNDARY, step_file=step_file, ngram_files="" if ngram is None else NGRAM_README.format(boundary=BOUNDARY))
    write_atomic(work / "README.md", readme)


def step_of(network):
    """The step to export, example state tensors, the state's description (makemore.json) and the README's words
    for it."""
    if isinstance(network, Networks):  # one recurrent step of each, their states stacked on the first axis
        _, example, state, words = step_of(network.networks[0])
        k = len(network.networks)
        state = dict(state, n_layers=k * state["n_layers"], networks=k)
        words += f"; n_layers is {k} networks' layers, stacked: the step mixes their distributions"
        return MixedStep(network), [torch.cat([t] * k) for t in example], state, words
    if getattr(network.config, "cell", None) in RECURRENT:
        config, cell = network.config, network.config.cell == "lstm"
        names = ["state", "cell"] if cell else ["state"]
        example = [torch.zeros(config.n_layers, 2, config.n_hidden)] * len(names)
        state = {"kind": "recurrent", "n_layers": config.n_layers, "n_hidden": config.n_hidden, "names": names}
        words = (f"`state` (n_layers, B, n_hidden) float32{' and `cell` of the same shape' if cell else ''}, zeros "
                 f"at the start; `new_state`{' (and `new_cell`)' if cell else ''} out, to feed back")
        return Step(network), example, state, words
    if isinstance(network, WaveNet):
        queues = [block.conv.empty_queue(2) for block in network.blocks]
        names = [f"queue{k}" for k in range(len(queues))]
        state = {"kind": "queues", "names": names, "shapes": [list(q.shape[1:]) for q in queues]}
        words = (f"`queue0` ... `queue{len(queues) - 1}` float32, (B, span, channels) each, shapes {state['shapes']}, "
                 "zeros at the start; `new_queue0` ... out, to feed back")
        return QueueStep(network), queues, state, words
    if isinstance(network, Transformer):
        c = network.config
        shape = [c.block_size, c.n_layers, 2 * c.n_embd]
        state = {"kind": "kv", "names": ["position", "kv"], "kv": shape}
        words = (f"`position` (1,) int64, 0 at the start, and `kv` (B, {', '.join(map(str, shape))}) float32, every "
                 "block's keys and values of the positions before, zeros at the start; `new_position` and `new_kv` "
                 f"out, to feed back (a word has at most {c.block_size - 1} characters)")
        return TransformerStep(network), [torch.zeros(1, dtype=torch.long), torch.zeros(2, *shape)], state, words
    start = network.config.block_size - 1
    state = {"kind": "tokens", "start": start, "names": ["tokens"]}
    words = (f"`tokens` (B, {start}) int64, the {start} characters written before `token`, boundary tokens "
             f"before the word ({start} of them at the start); `new_tokens` out, to feed back")
    return TokensStep(network), [torch.zeros(2, start, dtype=torch.long)], state, words


@contextlib.contextmanager
def new_folder(out):
    """A temporary folder beside out, renamed to out (which must not exist) once written: all or nothing."""
    out = Path(out)
    if out.exists():
        raise UserError(f"export: {out} exists; give a new folder")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=parent))
    except OSError as e:
        raise UserError(f"export: cannot write {out}: {e.strerror or e}") from None
    try:
        yield work
        umask = os.umask(0)
        os.umask(umask)
        work.chmod(0o777 & ~umask)  # mkdtemp's is 0700: the folder a plain mkdir would make
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def export_web(model, model_name: str, vocab, known, folder: Path, out: Path, *, max_len: int, val: float | None,
               style: Style | None = None):
    """Write out (which must not exist): a static page that generates and scores in the browser with no server.
    model.js holds the network's weights (float32, base64), the n-gram's tables, the vocabulary and the list's
    items (for "only new names") and how they are written (style.py); makemore.js runs them (web/README.md)."""
    network, ngram, share = network_of(model, model_name)
    config = getattr(network, "config", None)
    networks, weights = (network.networks, network.weights.tolist()) if isinstance(network, Networks) else ([network], [1.0])
    if getattr(config, "cell", None) not in RECURRENT:
        raise UserError(f"export --web: the {model_name} family cannot be exported as a page yet (only "
                        f"{', '.join(RECURRENT)} and the default recipe's gru+ngram)")
    meta = {"format": WEB_FORMAT, "model": model_name, "run": str(folder), "val": val, "cell": config.cell,
            "n_layers": config.n_layers, "n_hidden": config.n_hidden, "vocab": ["", *vocab.chars],
            "boundary": BOUNDARY, "networks": [web_weights(n) for n in networks], "network_weights": weights,
            "share": share,
            "ngram": None if ngram is None else ngram_tables(ngram), "known": sorted(known),
            "sampling": sampling(max_len, style)}
    with new_folder(out) as work:
        write_atomic(work / "model.js", f"window.MAKEMORE_MODEL = {json.dumps(meta, ensure_ascii=False)};\n")
        for page in WEB.iterdir():
            shutil.copyfile(page, work / page.name)
    return Path(out)
