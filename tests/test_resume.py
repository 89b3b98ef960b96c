"""A run that is killed and resumed ends exactly where the uninterrupted run ends."""

import json

import pytest
import torch

from makemore.config import TrainConfig
from makemore.run import load_run
from makemore.trainers import make_trainer

from conftest import CORPUS, resumed, train_into


def metrics(folder):
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name, options, optimizer", [
    ("hierarchical", dict(n_embd=6, n_hidden=16), "sgd"),
    ("wavenet", dict(block_size=16, n_embd=8, n_skip=16, dropout=0.2), "adamw"),  # dropout: torch's RNG resumes too
    ("gru+ngram", dict(n_embd=8, n_hidden=16, dropout=0.2, ngram_context=0), "adamw"),  # the share, the counts
    ("gru+ngram", dict(n_embd=8, n_hidden=16, dropout=0.2, ngram_context=0, networks=3), "adamw"),  # kept copies
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
