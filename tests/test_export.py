"""makemore export: the step model in onnxruntime, with the n-gram of the export's JSON mixed in as its README
says, gives the run's own log-probabilities along whole words."""

import json

import numpy as np
import pytest

import makemore

from conftest import assert_one_line_error, cli

ort = pytest.importorskip("onnxruntime")

WORDS = ["emma", "olivia", "x", "zzyzx", "annabelle"]
SMALL = dict(n_embd=8, n_hidden=16, steps=40, eval_every=20)


def ngram_probs(tables: dict, history: list, V: int) -> np.ndarray:
    """The exported n-gram's next-character distribution after history (the characters written, boundary first),
    computed from ngram.json as its README describes: interpolated Kneser-Ney up the orders from uniform."""
    context, D = tables["context"], tables["discount"]
    window = ([0] * context + history)[-context:] if context else []
    p = np.full(V, 1 / V)
    for k, rows in enumerate(tables["orders"]):
        h = window[len(window) - k:] if k else []
        counts = np.zeros(V)
        for row in rows:  # a consumer would index these; a scan is the plainest reading of the format
            if row[:k] == h:
                counts[row[k]] = row[k + 1]
        if counts.sum() > 0:
            p = (np.maximum(counts - D, 0) + D * (counts > 0).sum() * p) / counts.sum()
    return p


def exported_logprobs(folder, words) -> list[np.ndarray]:
    """Each word's log-probabilities of its characters and its end, from the export folder alone."""
    meta = json.loads((folder / "makemore.json").read_text(encoding="utf-8"))
    tables = json.loads((folder / "ngram.json").read_text()) if (folder / "ngram.json").exists() else None
    session = ort.InferenceSession(str(folder / "step.onnx"))
    stoi = {ch: i for i, ch in enumerate(meta["vocab"]) if i}
    V, shape = len(meta["vocab"]), meta["state"]
    out = []
    for word in words:
        tokens = [stoi[ch] for ch in word] + [meta["boundary"]]
        state = {name: np.zeros((shape["n_layers"], 1, shape["n_hidden"]), np.float32) for name in shape["names"]}
        last, history, logps = meta["boundary"], [], []
        for target in tokens:
            logp, *new = session.run(None, {"token": np.array([last], np.int64), **state})
            logp = logp[0].astype(np.float64)
            if tables is not None:
                mixed = (1 - meta["share"]) * np.exp(logp) + meta["share"] * ngram_probs(tables, history, V)
                logp = np.log(mixed)
            logps.append(logp[target])
            state = dict(zip(shape["names"], new))
            last, history = target, history + [target]
        out.append(np.array(logps))
    return out


@pytest.mark.parametrize("model", ["gru", "lstm", "gru+ngram"])
def test_the_export_gives_the_runs_log_probabilities_along_whole_words(tmp_path, word_file, model):
    run = makemore.train(word_file, model=model, out=tmp_path / "run", verbose=False, **SMALL)
    words = [w for w in WORDS if not run.vocab.unknown(w)]
    folder = run.export(tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["README.md", "makemore.json", "step.onnx", *(["ngram.json"] if model.endswith("+ngram") else [])])
    for score, got in zip(run.score(words), exported_logprobs(folder, words)):
        np.testing.assert_allclose(got, -np.array(score.surprisal), atol=1e-5, rtol=0)


def test_export_refusals_are_one_line(tmp_path, word_file):
    makemore.train(word_file, model="transformer", out=tmp_path / "t", verbose=False, n_layers=1, n_head=2, n_embd=8,
                   steps=10, eval_every=10)
    assert_one_line_error(cli("export", tmp_path / "t", "--out", tmp_path / "e"), "a transformer run cannot be exported")
    makemore.train(word_file, model="gru", out=tmp_path / "g", verbose=False, **SMALL)
    assert cli("export", tmp_path / "g", "--out", tmp_path / "e").returncode == 0
    assert_one_line_error(cli("export", tmp_path / "g", "--out", tmp_path / "e"), "exists; give a new folder")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no half-written folder
