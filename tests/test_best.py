"""Every run keeps its best model: the checkpoint's weights are those of the lowest logged val loss; early
stopping stops where it should; --time-limit stops and keeps the best; a resumed run tracks the best as an
uninterrupted one does; eval_every 0 is chosen from the data."""

import json
import math

import pytest
import torch

import makemore
from makemore import models
from makemore.auto import AUTO_MAX_NETWORKS, AUTO_MAX_TARGETS, AUTO_SMALL_POSITIONS, ListStats, auto_note, auto_recipe
from makemore.config import TrainConfig, resolve_run
from makemore.data import Corpus, Vocab
from makemore.run import load_run
from makemore.train import averaged_keys
from makemore.trainers import make_trainer, resume_trainer

from conftest import CORPUS, cli, make_items, train_into

OVERFIT = dict(n_embd=16, n_hidden=64)  # on the tiny corpus: val falls for about 60 steps, then rises


def overfit_config(**changes):
    return TrainConfig(**{**dict(steps=400, batch_size=16, optimizer="adamw", lr=0.02, eval_every=20, device="cpu"),
                          **changes})


def train(folder, cfg, kill_at=None, trainer=None):
    return train_into(folder, trainer or make_trainer(CORPUS, "gru", OVERFIT, cfg), "gru", kill_at)


def evals(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if "val_loss" in line]


def test_the_kept_model_is_the_one_with_the_lowest_logged_val(tmp_path):
    trainer = train(tmp_path, overfit_config())
    logged = evals(tmp_path)
    best = min(logged, key=lambda e: e["val_loss"])
    assert best["step"] < logged[-1]["step"] and logged[-1]["val_loss"] > best["val_loss"] + 0.3  # it did overfit
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["best_step"], summary["val_loss"], summary["train_loss"]) == (best["step"], best["val_loss"],
                                                                                 best["train_loss"])
    assert summary["last_val_loss"] == logged[-1]["val_loss"] and summary["step"] == 400
    run = load_run(tmp_path)  # what sample, eval, serve and the Python API read
    assert run.evaluate("val") == pytest.approx(best["val_loss"], abs=1e-9)
    assert load_run(tmp_path, weights="last").evaluate("val") == pytest.approx(logged[-1]["val_loss"], abs=1e-9)
    for key, value in trainer.best_state.items():
        assert torch.equal(run.model.state_dict()[key], value)


@pytest.mark.parametrize("patience", [1, 3])
def test_early_stopping_stops_after_patience_evaluations_without_a_lower_val(tmp_path, patience):
    trainer = train(tmp_path, overfit_config(patience=patience))
    logged = [e["val_loss"] for e in evals(tmp_path)]
    best, bad, stop_at = float("inf"), 0, None  # the rule, by hand, over the logged val losses
    for i, val in enumerate(logged):
        best, bad = (val, 0) if val < best else (best, bad + 1)
        if bad == patience:
            stop_at = i
            break
    assert stop_at == len(logged) - 1  # it stopped at the first evaluation the rule stops at, not later
    assert trainer.stopped == "patience" and trainer.step == 20 * len(logged) < 400
    assert json.loads((tmp_path / "summary.json").read_text())["stopped"] == "patience"
    result = cli("train", "--resume", tmp_path)  # more steps would only train past the rule that stopped it
    assert result.returncode == 2 and f"the run stopped early (patience) at step {trainer.step:,}" in result.stderr


def test_time_limit_stops_and_keeps_the_best(tmp_path):
    trainer = train(tmp_path, overfit_config(steps=10**6, time_limit=2.0))
    assert trainer.stopped == "time_limit" and trainer.step < 10**6
    assert "the run stopped early (time limit)" in cli("train", "--resume", tmp_path).stderr
    logged = evals(tmp_path)
    assert logged[-1]["step"] == trainer.step  # evaluated where it stopped
    best = min(logged, key=lambda e: e["val_loss"])
    assert load_run(tmp_path).evaluate("val") == pytest.approx(best["val_loss"], abs=1e-9)


def test_resume_with_best_tracking_equals_an_uninterrupted_run(tmp_path):
    """Killed after its best evaluation, resumed: the same best step, best weights, early stop and metrics."""
    cfg = overfit_config(patience=6)
    whole = train(tmp_path / "whole", cfg)
    assert whole.best["step"] < 120 and whole.stopped == "patience"
    assert train(tmp_path / "killed", cfg, kill_at=130) is None
    torch.manual_seed(99)
    resumed = train(tmp_path / "killed", cfg, trainer=resume_trainer(load_run(tmp_path / "killed")))
    assert (resumed.step, resumed.best, resumed.stopped) == (whole.step, whole.best, whole.stopped)
    assert evals(tmp_path / "whole") == evals(tmp_path / "killed")
    a, b = load_run(tmp_path / "whole").model.state_dict(), load_run(tmp_path / "killed").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_eval_every_zero_is_chosen_from_the_data_and_recorded(tmp_path, word_file):
    result = cli("train", word_file, "--model", "gru", "--n-embd", 8, "--n-hidden", 16, "--steps", 500, "--batch-size", 8,
                 "--optimizer", "adamw",
                 "--out", tmp_path / "run", "--samples", 0)
    assert result.returncode == 0, result.stderr
    every = json.loads((tmp_path / "run" / "config.json").read_text())["train"]["eval_every"]
    assert 1 <= every <= 500 and [e["step"] for e in evals(tmp_path / "run")][:2] == [every, 2 * every]


# ----------------------------------------------------------------------------- auto, the default recipe


def lists():
    six = ["ana", "bo", "cy", "dee", "eve", "flo"]
    long = ["".join(chr(97 + (i * 7 + j * 3) % 26) for j in range(64)) for i in range(40)]  # 64 characters each
    return {"six items": six, "300 items": make_items(300, seed=3), "64-character items": long}


@pytest.mark.parametrize("name", ["six items", "300 items", "64-character items"])
def test_the_auto_rule_gives_a_valid_config(name, tmp_path):
    items = lists()[name]
    stats = ListStats.of(Corpus(name, items, Vocab.from_items(items)))
    doc = auto_recipe(stats)
    spec = resolve_run(doc, None)  # every value one its field takes
    note = auto_note(stats, spec)
    assert note.startswith(f"auto: {len(items):,} items, ") and f"steps of {doc['train']['batch_size']}" in note
    assert spec.model_name == "gru" and spec.train.steps >= 1 and spec.train.patience > 0
    config = models.make_config(spec.model_name, vocab_size=stats.vocab, **spec.options)
    config.block_size = stats.longest + 1
    model = models.build(spec.model_name, config)
    X = torch.randint(0, stats.vocab, (4, stats.longest + 1))
    assert model(X, X)[0].shape == (4, stats.longest + 1, stats.vocab)
    if len(items) >= 10:  # and it trains, as makemore train my_list.txt does
        path = tmp_path / "list.txt"
        path.write_text("\n".join(items) + "\n")
        run = makemore.train(path, out=tmp_path / "run", verbose=False, steps=3)
        auto = json.loads((tmp_path / "run" / "config.json").read_text())["auto"]
        context = run.model.config.ngram_context  # with the n-gram chosen for the list, and its networks
        mixed = resolve_run(auto_recipe(stats, ngram_context=context), None)
        assert auto == auto_note(stats, mixed).replace(f"up to {spec.train.steps:,} steps", "up to 3 steps")
        assert f", mixed with a {context + 1}-gram; up to 3 steps" in auto
        assert run.model_name == "gru+ngram" and len(run.generate(3, seed=0)) == 3


def test_auto_scales_with_the_list_and_says_what_it_chose(tmp_path, word_file):
    small = auto_recipe(ListStats(300, 240, 2_000, 27, 12))
    large = auto_recipe(ListStats(32_033, 25_626, 182_625, 27, 15))
    assert small["options"]["n_hidden"] < large["options"]["n_hidden"]
    assert small["options"]["dropout"] > large["options"]["dropout"]
    huge = auto_recipe(ListStats(234_450, 187_560, 1_990_000, 27, 28))
    per_step = huge["train"]["batch_size"] * 1_990_000 / 187_560
    assert huge["train"]["steps"] == pytest.approx(AUTO_MAX_TARGETS / per_step, abs=1)  # bounded, whatever the list
    result = cli("train", word_file, "--steps", 5, "--out", tmp_path / "run", "--samples", 0, "--dropout", 0.25)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("auto: 120 items, ")  # the network's own options over the rule's
    assert f"{AUTO_MAX_NETWORKS} grus 128 wide, dropout 0.25, mixed with a " in result.stdout.splitlines()[0]
    assert f"-gram; up to 5 steps of {32 * AUTO_MAX_NETWORKS}, patience 10" in result.stdout.splitlines()[0]


def test_the_auto_recipe_takes_its_own_models_options_and_refuses_others(word_file):
    spec = makemore.resolve(word_file, n_hidden=96, discount=0.9)
    assert spec.model_name == "gru+ngram" and spec.options["n_hidden"] == 96 and spec.options["discount"] == 0.9
    assert "grus 96 wide" in spec.note
    with pytest.raises(makemore.ConfigError, match="n_head: model 'gru\\+ngram' has no such option"):
        makemore.resolve(word_file, n_head=2)


def test_a_small_list_of_long_items_trains_for_fewer_steps():
    """Below AUTO_SMALL_ITEMS items, on the CPU, the steps stop where the padded positions reach the budget:
    a batch of long items costs its longest item's length, every row."""
    short = ListStats(3000, 2400, 2400 * 8, 27, 12, tuple([0] * 8 + [2400]))  # every item 7 characters long
    long = ListStats(3000, 2400, 2400 * 41, 27, 60, tuple([0] * 41 + [2400]))  # every item 40
    for stats in (short, long):
        doc = auto_recipe(stats)
        steps, widths = doc["train"]["steps"], (doc["options"]["n_embd"], doc["options"]["n_hidden"])
        epochs = math.ceil(20 * stats.train_items / 64)
        weight = 1 + 27 / (3 * sum(widths))  # the head's share of a position
        assert steps == min(epochs, math.ceil(AUTO_SMALL_POSITIONS / (64 * (len(stats.lengths) - 1) * weight)))
        assert auto_recipe(stats, positions=None)["train"]["steps"] == epochs  # the rule before the budget
        assert auto_recipe(stats, gpu=True)["train"]["steps"] == math.ceil(20 * stats.train_items / 256)
    assert auto_recipe(long)["train"]["steps"] < auto_recipe(short)["train"]["steps"]
    mixed = ListStats(3000, 4, 25, 27, 9, (0, 0, 1, 0, 0, 0, 0, 0, 2, 1))  # lengths 2, 8, 8, 9
    assert mixed.positions(1) == pytest.approx(27 / 4)  # one item a batch: the mean length
    assert mixed.positions(2) == pytest.approx(2 * sum(max(a, b) for a in (2, 8, 8, 9) for b in (2, 8, 8, 9)) / 16)


def test_a_small_list_spends_the_budget_its_epochs_leave_on_more_networks():
    """Below AUTO_SMALL_ITEMS items, on the CPU: as many networks as the budget holds at the list's steps (at most
    AUTO_MAX_NETWORKS), each with a batch of its own rows; one where the budget ends the epochs, and on a GPU."""
    for items in (60, 300, 1000, 3000):
        stats = ListStats(items, items * 4 // 5, items * 4 // 5 * 8, 27, 12, tuple([0] * 8 + [items * 4 // 5]))
        doc = auto_recipe(stats, ngram_context=3)
        k, steps, batch = doc["options"].get("networks", 1), doc["train"]["steps"], doc["train"]["batch_size"]
        one = auto_recipe(stats, ngram_context=3, positions=None)["train"]["batch_size"]  # the rule before the budget
        assert batch == k * one and 1 <= k <= AUTO_MAX_NETWORKS
        cost = stats.cost(one, doc["options"]["n_embd"], doc["options"]["n_hidden"])
        assert k * steps * cost <= AUTO_SMALL_POSITIONS  # within the budget ...
        assert k == AUTO_MAX_NETWORKS or (k + 1) * steps * cost > AUTO_SMALL_POSITIONS  # ... filled
        assert "networks" not in auto_recipe(stats, gpu=True, ngram_context=3)["options"]
    assert auto_recipe(ListStats(60, 48, 384, 27, 12, tuple([0] * 8 + [48])), ngram_context=3)["options"]["networks"] > 1
    assert "networks" not in auto_recipe(ListStats(3000, 2400, 2400 * 41, 27, 60, tuple([0] * 41 + [2400])),
                                         ngram_context=3)["options"]  # long items: the budget ends the epochs


def test_a_large_vocabulary_counts_its_output_layer_against_the_budget():
    """A position of a list of 600 characters costs a head 600 wide: the same lengths with 27 characters train
    more networks (or steps) in the same budget, and the weight is the head's share of the work."""
    lengths = tuple([0] * 8 + [800])
    latin, kanji = (ListStats(1000, 800, 800 * 8, vocab, 12, lengths) for vocab in (27, 600))
    assert kanji.cost(64, 64, 192) / latin.cost(64, 64, 192) == pytest.approx((1 + 600 / 768) / (1 + 27 / 768))
    few, many = (auto_recipe(stats, ngram_context=3) for stats in (kanji, latin))
    budget = [doc["options"].get("networks", 1) * doc["train"]["steps"] for doc in (few, many)]
    assert budget[0] < budget[1]


# ----------------------------------------------------------------------------- a moving average of the weights


def test_the_moving_average_is_computed_as_written_and_evaluated_beside_the_weights(tmp_path):
    """ema: after every step, averaged = ema * averaged + (1 - ema) * weights (the first step's weights to
    start); each evaluation takes the better of the two, and the kept model is that evaluation's weights."""
    cfg = overfit_config(steps=120, ema=0.9, lr=0.01)
    trainer = make_trainer(CORPUS, "gru", OVERFIT, cfg)
    by_hand, seen = {}, []

    def follow(t, event):
        if event == "step":
            state = t.model.state_dict()
            for k, v in state.items():
                by_hand[k] = v.clone() if k not in by_hand else 0.9 * by_hand[k] + 0.1 * v
            seen.append({k: torch.allclose(by_hand[k], t.averaged[k], atol=1e-6) for k in state})
    trainer.add_callback(follow)
    trainer = train(tmp_path, cfg, trainer=trainer)
    assert all(all(s.values()) for s in seen) and len(seen) == 120
    logged = evals(tmp_path)
    assert {e["weights"] for e in logged} == {"average", "last"}  # each won somewhere
    best = min(logged, key=lambda e: e["val_loss"])
    run = load_run(tmp_path)
    assert run.evaluate("val") == pytest.approx(best["val_loss"], abs=1e-9)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["best_weights"] == best["weights"] and summary["best_step"] == best["step"]
    raw = make_trainer(CORPUS, "gru", OVERFIT, overfit_config(steps=120, lr=0.01))
    raw.run()  # the same weights, step for step: the average is only read
    last = load_run(tmp_path, weights="last").model.state_dict()
    assert all(torch.equal(v, last[k]) for k, v in raw.model.state_dict().items())


def test_the_moving_average_of_several_networks_averages_only_what_trains(tmp_path):
    """gru+ngram with networks = 2 and ema: the average is of the live networks' weights; the kept copies of the
    networks, their losses and the mixture's share, weights and discount (kept aside or chosen on val, not trained)
    are the live model's own, at every step."""
    cfg = overfit_config(steps=60, ema=0.9, lr=0.01)
    trainer = make_trainer(CORPUS, "gru+ngram", dict(OVERFIT, networks=2, ngram_context=2), cfg)
    trained = set(averaged_keys(trainer.model))
    assert trained == {k for k, p in trainer.model.named_parameters() if k.startswith("live.")} and trained
    by_hand, checked = {}, []

    def follow(t, event):
        if event == "step":
            for k, v in t.model.state_dict().items():
                if k in trained:
                    by_hand[k] = v.clone() if k not in by_hand else 0.9 * by_hand[k] + 0.1 * v
                    checked.append(torch.allclose(by_hand[k], t.averaged[k], atol=1e-6))
                else:
                    checked.append(torch.equal(v, t.averaged[k]))
    trainer.add_callback(follow)
    train_into(tmp_path, trainer, "gru+ngram")
    assert all(checked) and len(checked) == 60 * len(trainer.model.state_dict())
    kept = trainer.model.state_dict()["kept_loss"]
    assert (kept < 1e300).all()  # each network has been kept at an evaluation: its loss is a loss, not a blend


def test_resume_with_a_moving_average_equals_an_uninterrupted_run(tmp_path):
    cfg = overfit_config(steps=200, ema=0.95, patience=0)
    whole = train(tmp_path / "whole", cfg)
    assert train(tmp_path / "killed", cfg, kill_at=130) is None
    torch.manual_seed(99)
    resumed = train(tmp_path / "killed", cfg, trainer=resume_trainer(load_run(tmp_path / "killed")))
    assert (resumed.step, resumed.best) == (whole.step, whole.best)
    assert all(torch.equal(whole.averaged[k], resumed.averaged[k]) for k in whole.averaged)
    assert evals(tmp_path / "whole") == evals(tmp_path / "killed")
    a, b = load_run(tmp_path / "whole").model.state_dict(), load_run(tmp_path / "killed").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ema_flag(tmp_path, word_file):
    from conftest import assert_one_line_error

    assert_one_line_error(cli("train", word_file, "--ema", 1.5, "--out", tmp_path / "a"), "--ema: ")
    assert_one_line_error(cli("train", word_file, "--model", "hierarchical", "--backend", "jax", "--ema", 0.9,
                              "--out", tmp_path / "j"), "--ema: not in the jax backend")
    result = cli("train", word_file, "--model", "gru", "--ema", 0.99, "--steps", 60, "--eval-every", 20,
                 "--optimizer", "adamw", "--lr", 0.01, "--out", tmp_path / "b", "--samples", 0)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["ema"] == 0.99
