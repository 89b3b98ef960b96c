"""A run that is killed and resumed ends exactly where the uninterrupted run ends."""

import json
import subprocess
import sys
import time

import pytest
import torch

from makemore.config import TrainConfig
from makemore.run import load_run
from makemore.trainers import make_trainer

from conftest import CORPUS, assert_one_line_error, cli, resumed, train_into


def metrics(folder):
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name, options, optimizer", [
    ("hierarchical", dict(n_embd=6, n_hidden=16), "sgd"),
    ("wavenet", dict(block_size=16, n_embd=8, n_skip=16, dropout=0.2), "adamw"),  # dropout: torch's RNG resumes too
    ("gru+ngram", dict(n_embd=8, n_hidden=16, dropout=0.2, ngram_context=0), "adamw"),  # the share, the counts
])
def test_resumed_run_equals_uninterrupted(tmp_path, name, options, optimizer):
    cfg = TrainConfig(steps=60, batch_size=16, eval_every=20, log_every=10, device="cpu", optimizer=optimizer,
                      lr=0.01 if optimizer == "adamw" else 0.1)
    whole = train_into(tmp_path / "whole", make_trainer(CORPUS, name, options, cfg), name)
    assert train_into(tmp_path / "killed", make_trainer(CORPUS, name, options, cfg), name, kill_at=50) is None
    assert load_run(tmp_path / "killed").state["step"] == 40  # the last checkpoint before the kill
    trainer = train_into(tmp_path / "killed", resumed(tmp_path / "killed"), name)
    assert trainer.last_eval == whole.last_eval and trainer.best == whole.best
    a, b = load_run(tmp_path / "whole"), load_run(tmp_path / "killed")
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    assert metrics(tmp_path / "whole") == metrics(tmp_path / "killed")


@pytest.mark.slow
def test_cli_resume_after_sigkill(tmp_path, word_file):
    args = ["--n-embd", 6, "--n-hidden", 16, "--steps", 1500, "--eval-every", 100, "--samples", 0]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert cli("train", word_file, "--out", whole, *args).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "makemore", "train", word_file, "--out", killed, *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "model.pt").exists() and time.time() < deadline:
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    step = load_run(killed).state["step"]
    assert 100 <= step < 1500, "killed before the first checkpoint or after the end"
    result = cli("train", "--resume", killed, "--samples", 0)
    assert result.returncode == 0, result.stderr
    assert f"resuming {killed} at step {step:,}" in result.stdout
    assert json.loads((whole / "summary.json").read_text())["val_loss"] == \
        json.loads((killed / "summary.json").read_text())["val_loss"]
    a, b = load_run(whole).model.state_dict(), load_run(killed).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert_one_line_error(cli("train", "--resume", killed), "the run is complete (1,500 of 1,500 steps)")
    assert_one_line_error(cli("train", word_file, "--resume", killed), "--resume: the run folder holds its data")
