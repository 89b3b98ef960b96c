"""torchrun: DistributedDataParallel on 2 CPU processes (gloo) trains as one process does with the same global
batch, writes the run folder from rank 0 only, and resumes exactly. One torchrun job (tests/ddp_ranks.py) runs
the command line and the library: each job costs its processes' start (torch, and torch._dynamo with the group)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from makemore.cli import main
from makemore.config import TrainConfig
from makemore.data import examples
from makemore.errors import ConfigError
from makemore.ranks import Ranks
from makemore.run import load_run
from makemore.train import Trainer
from makemore.trainers import make_trainer

from conftest import CORPUS, build, train_into
from ddp_ranks import WINDOWS, WINDOWS_CFG

# Float sums in another order (each rank's half of the batch, then gloo's average): the runs agree to this.
TOLERANCE = 1e-5


def torchrun(*args, nproc=2):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                           *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


def weights(folder):
    return load_run(folder).state["model"]


def assert_close_weights(a, b):
    w1, w2 = weights(a), weights(b)
    for key in w1:
        torch.testing.assert_close(w1[key], w2[key], atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.slow
def test_torchrun_trains_as_one_process_and_resumes_exactly(tmp_path, word_file):
    """One torchrun job of 2 ranks (tests/ddp_ranks.py): the command line on whole items, split between the
    ranks, against one process; the library on windows against one process; a wavenet run killed after its
    step-20 checkpoint and resumed, against the same run uninterrupted (bit for bit)."""
    common = [word_file, "--model", "lstm", "--n-embd", 8, "--n-hidden", 24, "--steps", 60, "--batch-size", 32,
              "--optimizer", "adamw", "--lr", 0.01, "--schedule", "cosine", "--eval-every", 20, "--samples", 3, "--device", "cpu"]
    two = torchrun(Path(__file__).parent / "ddp_ranks.py", tmp_path, *common, "--out", tmp_path / "two")
    assert two.returncode == 0, two.stderr
    assert "x 2 processes" in two.stdout
    assert two.stdout.count("\nval ") == 1  # only rank 0 prints

    assert main(["train", *map(str, common), "--out", str(tmp_path / "one")]) == 0  # one process: this one
    evals = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines() if "val_loss" in line]
             for run in ("one", "two")]
    assert [e["step"] for e in evals[0]] == [e["step"] for e in evals[1]] == [20, 40, 60]
    for a, b in zip(*evals):
        assert abs(a["val_loss"] - b["val_loss"]) < TOLERANCE and abs(a["train_loss"] - b["train_loss"]) < TOLERANCE
    assert_close_weights(tmp_path / "one", tmp_path / "two")

    result = json.loads((tmp_path / "result.json").read_text())
    one = train_into(tmp_path / "windows-one", make_trainer(CORPUS, *WINDOWS, WINDOWS_CFG), WINDOWS[0]).last_eval
    for key in ("train_loss", "val_loss"):
        assert abs(one[key] - result["windows"][key]) < TOLERANCE, (key, one, result["windows"])
    assert_close_weights(tmp_path / "windows-one", tmp_path / "windows")
    assert result["resumed"] == result["whole"]
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "killed")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert len(load_run(tmp_path / "whole").state["rank_rng_states"]) == 2


@pytest.mark.slow
def test_batch_must_split_evenly():
    """Checked before the model is wrapped for DDP, so no process group is needed to see it (and the command line
    renders a ConfigError as its flag: --batch-size: 33 is not ...)."""
    model = build("lstm")
    data = examples(model, CORPUS, "train")
    cfg = TrainConfig(steps=5, batch_size=33, device="cpu", optimizer="adamw")
    with pytest.raises(ConfigError) as refused:
        Trainer(model, cfg, data, data, torch.Generator().manual_seed(0), torch.device("cpu"), ranks=Ranks(0, 2))
    assert refused.value.field == "batch_size" and "33 is not a multiple of the 2 processes" in str(refused.value)
