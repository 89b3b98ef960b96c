"""The ensemble: its loss is the mixture computed by hand, it generates with each member's cache (= naive), and
`makemore ensemble` makes a run that samples, scores, evaluates and serves like any other."""

import dataclasses
import json
import math

import pytest
import torch

import makemore
from makemore import models
from makemore.data import IGNORE, build_sequences, build_windows, examples
from makemore.errors import ConfigError
from makemore.models.ensemble import Ensemble, EnsembleConfig
from makemore.sample import generate
from makemore.train import evaluate

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
    assert_one_line_error(cli("ensemble", *member_runs, "--out", member_runs[0]), "already holds a run")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# ----------------------------------------------------------------------------- ensemble recipes: [[members]]

GRU_MEMBER = """
[[members]]
model = "gru"
n_embd = 8
n_hidden = 16
steps = 30
batch_size = 16
eval_every = 10
optimizer = "adamw"
lr = 0.01
"""
RECIPE = 'data = "{data}"\n' + GRU_MEMBER * 2 + '\n[[members]]\nmodel = "ngram"\nblock_size = 2\n'


@pytest.fixture
def recipe(tmp_path, word_file):
    path = tmp_path / "ens.toml"
    path.write_text(RECIPE.format(data=word_file.as_posix()), encoding="utf-8")
    return path


def test_an_ensemble_recipe_trains_each_member_then_mixes_them(recipe, tmp_path):
    run = makemore.train(config=recipe, out=tmp_path / "ens", verbose=False)
    folders = [tmp_path / "ens" / "members" / name for name in ("1-gru", "2-gru", "3-ngram")]
    seeds = [json.loads((f / "config.json").read_text())["train"]["seed"] for f in folders]
    assert run.model_name == "ensemble" and seeds == [42, 43, 44]  # one seed names the ensemble: seed + i
    by_hand = makemore.ensemble(folders, out=tmp_path / "by-hand")
    assert run.evaluate("val") == by_hand.evaluate("val")
    grus = [makemore.load(f).model.state_dict() for f in folders[:2]]
    assert not torch.equal(grus[0]["embedding.weight"], grus[1]["embedding.weight"])  # two seeds, two models
    summary = json.loads((tmp_path / "ens" / "summary.json").read_text())
    assert [m["model"] for m in summary["members"]] == ["gru", "gru", "ngram"]
    spec = makemore.resolve(config=recipe, seed=7, steps=5)
    assert [(m.train.seed, m.train.steps) for m in spec.members] == [(7, 5), (8, 5), (9, 5)]  # flags: each member


def test_an_interrupted_ensemble_recipe_resumes_to_the_same_ensemble(recipe, tmp_path):
    whole = makemore.train(config=recipe, out=tmp_path / "whole", verbose=False)

    def interrupt(trainer, event):  # in the second member, after its checkpoint of step 20
        if event == "step" and trainer.cfg.seed == 43 and trainer.step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        makemore.train(config=recipe, out=tmp_path / "cut", verbose=False, callbacks=[interrupt])
    assert not (tmp_path / "cut" / "model.pt").exists() and (tmp_path / "cut" / "members" / "2-gru" / "model.pt").exists()
    result = cli("train", "--resume", tmp_path / "cut", "--samples", 0)
    assert result.returncode == 0, result.stderr
    assert "member 3: ngram" in result.stdout and "1-gru" not in result.stdout  # the first member was not retrained
    cut = makemore.load(tmp_path / "cut")
    assert cut.evaluate("val") == whole.evaluate("val")
    for a, b in zip(whole.model.state_dict().values(), cut.model.state_dict().values()):
        assert torch.equal(a, b)
    assert_one_line_error(cli("train", "--resume", tmp_path / "cut"), "its members are trained and mixed")
    assert_one_line_error(cli("train", "--config", recipe, "--out", tmp_path / "cut"), "--out: ", "already holds a run")


def test_the_best_preset_is_four_default_runs_256_wide(word_file):
    spec = makemore.resolve(word_file, preset="best")
    assert spec.model_name == "ensemble" and not spec.weights  # weights: chosen on val
    assert [m.model_name for m in spec.members] == ["gru+ngram"] * 4
    assert [m.train.seed for m in spec.members] == [42, 43, 44, 45]
    assert all(m.note.startswith("auto: ") for m in spec.members)  # the auto recipe, as `makemore train` chooses
    assert all(m.options["n_hidden"] == 256 for m in spec.members)  # wider than the list's own (128 here)
    assert makemore.resolve(word_file).options["n_hidden"] == 128


def test_an_ensemble_of_network_and_ngram_runs_mixes_their_parts_with_weights_chosen_on_val(tmp_path, word_file):
    """Two default runs of two networks each: their four GRUs and one n-gram (the same counts twice are one). The
    GRUs are alike (one config), so they share one weight equally, and the n-gram's share is the one of lowest val
    loss: lower than the runs' own mixtures at their equal weights, or any other share on a grid."""
    runs = [makemore.train(word_file, out=tmp_path / f"r{seed}", seed=seed, n_hidden=16, steps=40, networks=2,
                           verbose=False) for seed in (1, 2)]
    both = makemore.ensemble([r.folder for r in runs], out=tmp_path / "both")
    assert [m["model"] for m in both.model.config.members] == ["gru", "gru", "ngram", "gru", "gru"]
    summary = json.loads((tmp_path / "both" / "summary.json").read_text())
    weights = [m["weight"] for m in summary["members"]]
    assert sum(weights) == pytest.approx(1) and summary["test_loss"] == pytest.approx(both.evaluate("test"), abs=1e-6)
    even = makemore.ensemble([r.folder for r in runs], out=tmp_path / "even", weights=[0.5, 0.5])
    assert both.evaluate("val") <= even.evaluate("val")
    assert weights[:2] + weights[3:] == pytest.approx([weights[0]] * 4, abs=1e-12) and 0 < weights[2] < 1
    for share in torch.linspace(0.05, 0.95, 19).tolist():
        tried = [(1 - share) / 4] * 2 + [share] + [(1 - share) / 4] * 2
        model = models.Ensemble(dataclasses.replace(both.model.config, weights=tried), list(both.model.members))
        assert both.evaluate("val") <= evaluate(model, examples(model, both.corpus, "val")) + 1e-6


@pytest.mark.parametrize("text, fragment", [
    ('[[members]]\nn_hidden = -1\nmodel = "gru"', "[[members]] 1: n_hidden: "),
    ('[[members]]\nlr = "x"', "[[members]] 1 lr: "),
    ('[[members]]\nwidth = 3', "[[members]] 1: unknown key 'width'"),
    ('[[members]]\npreset = "fast"\nmodel = "gru"', "give preset or model, not both"),
    ('weights = [0.4, 0.6]\n[[members]]', "weights: one weight of at least 0 per member, summing to 1"),
    ('weights = [0.5, 0.6]\n[[members]]\n[[members]]', "weights: one weight of at least 0 per member, summing to 1"),
    ('model = "gru"\n[[members]]', "a file with [[members]] describes an ensemble"),
    ('members = 3', "members must be tables"),
])
def test_a_bad_recipe_is_a_one_line_error_naming_the_file(tmp_path, word_file, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n", encoding="utf-8")
    assert_one_line_error(cli("train", word_file, "--config", path, "--out", tmp_path / "r"), f"{path}: ", fragment)
    assert not (tmp_path / "r").exists()
