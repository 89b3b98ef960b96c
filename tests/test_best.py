"""Every run keeps its best model: the checkpoint's weights are those of the lowest logged val loss; early
stopping stops where it should; --time-limit stops and keeps the best; a resumed run tracks the best as an
uninterrupted one does; eval_every 0 is chosen from the data."""

import json

import pytest
import torch

from makemore.config import TrainConfig
from makemore.run import RunWriter, load_run, make_trainer, resume_trainer

from conftest import CORPUS, cli

OVERFIT = dict(n_embd=16, n_hidden=64)  # on the tiny corpus: val falls for about 60 steps, then rises


def overfit_config(**changes):
    return TrainConfig(**{**dict(steps=400, batch_size=16, optimizer="adamw", lr=0.02, eval_every=20, device="cpu"),
                          **changes})


class Killed(Exception):
    pass


def train(folder, cfg, kill_at=None, trainer=None):
    trainer = trainer or make_trainer(CORPUS, "gru", OVERFIT, cfg)
    writer = RunWriter(folder, "test", "gru", CORPUS, plot=False)
    writer.start(trainer)
    trainer.add_callback(writer)
    if kill_at:
        def kill(t, event):
            if t.step >= kill_at:
                raise Killed
        trainer.add_callback(kill)
    try:
        trainer.run()
    except Killed:
        return None
    return trainer


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


def test_time_limit_stops_and_keeps_the_best(tmp_path):
    trainer = train(tmp_path, overfit_config(steps=10**6, time_limit=2.0))
    assert trainer.stopped == "time_limit" and trainer.step < 10**6
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
    result = cli("train", word_file, "--model", "gru", "--steps", 500, "--batch-size", 8, "--optimizer", "adamw",
                 "--out", tmp_path / "run", "--samples", 0)
    assert result.returncode == 0, result.stderr
    every = json.loads((tmp_path / "run" / "config.json").read_text())["train"]["eval_every"]
    assert 1 <= every <= 500 and [e["step"] for e in evals(tmp_path / "run")][:2] == [every, 2 * every]
