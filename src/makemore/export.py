"""A trained run outside Python: its step model as ONNX, its vocabulary and sampling defaults as JSON, and for
the default recipe's model the n-gram's counts as JSON, in a folder of its own (see EXPORT_README).

    makemore export RUN --format onnx --out DIR      or      run.export(DIR)

The step model: the last character (B,) int64 and the state (n_layers, B, n_hidden) float32 in, the next
character's log-probabilities (B, V) and the new state out (an LSTM has a second state, the cell). Generation
starts from the boundary token and a state of zeros, feeds each drawn character back, and ends at the boundary.
Families with a cache of another shape (the trees' per-layer queues, the Transformer's keys and values) are not
exported yet: a one-line error names the family.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from makemore.data import BOUNDARY
from makemore.errors import UserError
from makemore.files import write_atomic

FORMAT = "makemore-export/1"
RECURRENT = ("rnn", "gru", "lstm")
EXPORT_README = """# {name}: an exported makemore run

Made by `makemore export` from the run `{run}` ({model}; val {val}).

## Files

- `step.onnx`: one step of the network. Inputs: `token` (B,) int64, the last character; `state` (n_layers, B,
  n_hidden) float32{cell_in}. Outputs: `logprobs` (B, V) float32, the log-probabilities of the next character;
  `new_state`{cell_out}, to feed back at the next step.
- `makemore.json`: `vocab` (the characters by index; index {boundary}, written "", is the boundary token, which
  starts and ends every name), the state's shape, the sampling defaults (`max_len`, `temperature`), and for the default
  recipe's model the n-gram's `share`.
{ngram_files}
## Generating a name

Start with `token = [{boundary}]` and a state of zeros. At each step run the model, turn `logprobs` into the
next character's distribution (with the n-gram mixed in, if there is one), divide the log-probabilities by the
temperature, draw a character, and feed it back with `new_state`. A drawn boundary token ends the name; a name
longer than `max_len` characters is drawn again.
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


def network_of(model, model_name: str):
    """The recurrent network to export and the n-gram beside it (None for a model alone)."""
    family = model_name.removesuffix("+ngram")
    if family not in RECURRENT:
        raise UserError(f"export: a {model_name} run cannot be exported yet (only {', '.join(RECURRENT)} and "
                        f"their +ngram default)")
    if getattr(model.config, "n_classes", 0):
        raise UserError("export: a conditioned run cannot be exported yet")
    if model_name.endswith("+ngram"):
        return model.members[0], model.members[1], float(model.share)
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


def export_onnx(model, model_name: str, vocab, folder: Path, out: Path, *, max_len: int, val: float | None):
    """Write the export folder out (which must not exist): step.onnx, makemore.json, README.md and, for the
    default recipe's model, ngram.json; all or nothing."""
    network, ngram, share = network_of(model, model_name)
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise UserError("export: the onnx package is missing: pip install 'makemore[export]'") from None
    out = Path(out)
    if out.exists():
        raise UserError(f"export: {out} exists; give a new folder")
    config = network.config
    layers, hidden, cell = config.n_layers, config.n_hidden, model_name.startswith("lstm")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=parent))
    except OSError as e:
        raise UserError(f"export: cannot write {out}: {e.strerror or e}") from None
    try:
        was_training = network.training
        network.eval()
        state = [torch.zeros(layers, 2, hidden)] * (2 if cell else 1)
        names = ["state", "cell"][: len(state)]
        outputs = ["logprobs", *(f"new_{n}" for n in names)]
        axes = {"token": {0: "batch"}, "logprobs": {0: "batch"},
                **{n: {1: "batch"} for n in names}, **{f"new_{n}": {1: "batch"} for n in names}}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's advice on batch sizes: the state is an input, as it asks
            torch.onnx.export(Step(network).cpu(), (torch.zeros(2, dtype=torch.long), *state), work / "step.onnx",
                              input_names=["token", *names], output_names=outputs, dynamic_axes=axes,
                              dynamo=False)
        network.train(was_training)
        meta = {"format": FORMAT, "model": model_name, "vocab": ["", *vocab.chars], "boundary": BOUNDARY,
                "state": {"n_layers": layers, "n_hidden": hidden, "names": names},
                "sampling": {"max_len": max_len, "temperature": 1.0}, "share": share}
        write_atomic(work / "makemore.json", json.dumps(meta, ensure_ascii=False))
        if ngram is not None:
            write_atomic(work / "ngram.json", json.dumps(ngram_tables(ngram)))
        readme = EXPORT_README.format(
            name=out.name, run=folder, model=model_name, val="?" if val is None else f"{val:.4f}", boundary=BOUNDARY,
            cell_in=" and `cell` of the same shape" if cell else "", cell_out=" (and `new_cell`)" if cell else "",
            ngram_files="" if ngram is None else NGRAM_README.format(boundary=BOUNDARY))
        write_atomic(work / "README.md", readme)
        umask = os.umask(0)
        os.umask(umask)
        work.chmod(0o777 & ~umask)  # mkdtemp's is 0700: the folder a plain mkdir would make
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out
