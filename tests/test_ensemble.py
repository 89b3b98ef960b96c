"""The ensemble: its loss is the mixture computed by hand, it generates with each member's cache (= naive), and
`makemore ensemble` makes a run that samples, scores, evaluates and serves like any other."""

import json
import math

import pytest
import torch

import makemore
from makemore import models
from makemore.data import IGNORE, build_sequences, build_windows
from makemore.errors import ConfigError
from makemore.models.ensemble import Ensemble, EnsembleConfig
from makemore.sample import generate

from conftest import ITEMS, VOCAB, assert_one_line_error, cli, make_items, trained

MEMBERS = ["hierarchical", "mlp", "gru", "transformer", "wavenet", "ngram"]


def ensemble_of(names, weights=()):
    torch.manual_seed(0)
    members = [trained(n, steps=40, **({"block_size": 32} if n == "transformer" else {})) for n in names]
    config = EnsembleConfig(VOCAB.size, 32, [{"model": n, "config": vars(m.config).copy()} for n, m in zip(names, members)],
                            list(weights))
    return Ensemble(config, members).eval(), members


def test_its_loss_is_the_mixture_computed_by_hand():
    weights = [0.3, 0.1, 0.2, 0.2, 0.1, 0.1]
    model, members = ensemble_of(MEMBERS, weights)
    words = ITEMS[:50]
    X, Y = build_sequences(words, VOCAB)
    with torch.no_grad():
        loss = model(X, Y)[1].item()
        probs = []  # each member's probability of every target, in the order of the words' characters
        for m in members:
            if m.windowed:
                Xw, Yw = build_windows(words, VOCAB, m.config.block_size)
                probs.append(torch.softmax(m(Xw)[0].double(), -1).gather(1, Yw[:, None])[:, 0])
            else:
                p = torch.softmax(m(X)[0].double(), -1).gather(2, Y.clamp(min=0)[..., None])[..., 0]
                probs.append(p[Y != IGNORE])
    by_hand = -sum(w * p for w, p in zip(weights, probs)).log().mean().item()
    assert loss == pytest.approx(by_hand, abs=1e-5)
    members_loss = [-p.log().mean().item() for p in probs]
    assert loss <= sum(w * x for w, x in zip(weights, members_loss))  # a mixture's loss: at most the mean loss


def test_it_generates_with_each_members_cache_and_that_equals_naive():
    model, _ = ensemble_of(MEMBERS)
    out = {}
    for cached in (True, False):
        out[cached] = generate(model, VOCAB, 200, max_len=30, generator=torch.Generator().manual_seed(3), cached=cached)
        out[cached] += generate(model, VOCAB, 50, max_len=30, generator=torch.Generator().manual_seed(4), cached=cached,
                                prefix="ma", temperature=0.8, top_p=0.9)
    assert out[True] == out[False]
    assert len(set(out[True])) > 50


def test_bad_weights_name_the_field():
    for weights, fragment in [([0.5, 0.5], "one weight of at least 0 per member"), ([0.9, 0.9, -0.8], "weights: ")]:
        with pytest.raises(ConfigError, match=fragment):
            ensemble_of(["hierarchical", "gru", "mlp"], weights)


@pytest.fixture(scope="module")
def member_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ens")
    data = folder / "words.txt"
    data.write_text("\n".join(make_items(300)) + "\n", encoding="utf-8")
    runs = []
    for name, flags in [("gru", ("--n-embd", 8, "--n-hidden", 32, "--optimizer", "adamw", "--lr", 0.01)),
                        ("hierarchical", ())]:
        out = folder / name
        result = cli("train", data, "--model", name, *flags, "--steps", 300, "--batch-size", 32, "--out", out,
                     "--samples", 0)
        assert result.returncode == 0, result.stderr
        runs.append(out)
    return runs


def test_makemore_ensemble_makes_a_run_like_any_other(member_runs, tmp_path):
    out = tmp_path / "both"
    result = cli("ensemble", *member_runs, "--out", out)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    run = makemore.load(out)
    assert run.model_name == "ensemble" and [m["model"] for m in summary["members"]] == ["gru", "hierarchical"]
    assert summary["val_loss"] == pytest.approx(run.evaluate("val"), abs=1e-6)
    member_vals = [makemore.load(r).evaluate("val") for r in member_runs]
    assert summary["val_loss"] <= sum(member_vals) / 2  # at most the mean of its members'
    assert summary["params"] == sum(models.num_params(makemore.load(r).model) for r in member_runs)
    ngram = tmp_path / "ngram"
    assert cli("train", member_runs[0].parent / "words.txt", "--model", "ngram", "--out", ngram).returncode == 0
    assert makemore.ensemble([member_runs[0], ngram], out=tmp_path / "with-ngram").state["model_name"] == "ensemble"
    assert models.num_params(makemore.load(tmp_path / "with-ngram").model) == sum(
        models.num_params(makemore.load(r).model) for r in (member_runs[0], ngram))  # the count table's entries too
    sample = cli("sample", out, "-n", 5, "--seed", 1)
    assert sample.returncode == 0 and len(sample.stdout.splitlines()) == 6
    [score] = run.score(["maria"])
    assert math.isfinite(score.logprob) and score.logprob < 0
    assert cli("eval", out).returncode == 0
    assert "ensemble" in cli("runs", tmp_path).stdout
    assert_one_line_error(cli("train", "--resume", out), "is made from trained runs, not trained")


def test_makemore_ensemble_refuses_what_it_cannot_combine(member_runs, tmp_path, word_file):
    other = tmp_path / "other"
    assert cli("train", word_file, "--model", "bigram", "--out", other).returncode == 0
    assert_one_line_error(cli("ensemble", member_runs[0], other, "--out", tmp_path / "x"),
                          f"{other}: trained on other data than {member_runs[0]}")
    assert_one_line_error(cli("ensemble", *member_runs, "--weights", 0.5, "--out", tmp_path / "y"),
                          "--weights: one weight of at least 0 per member, summing to 1; got [0.5]")
    assert_one_line_error(cli("ensemble", *member_runs, "--weights", "x", 0.5), "--weights: ")
    assert_one_line_error(cli("ensemble", *member_runs, "--out", member_runs[0]), "exists and is not empty")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
