"""The JAX/Flax port: the same logits as the PyTorch models in both directions of weight conversion, in eval
and train mode; the same training as the PyTorch Trainer; the CLI's --backend jax."""

import functools
import importlib.util
import os
import sys

import numpy as np
import pytest
import torch

from makemore import models
from makemore.config import TrainConfig
from makemore.data import examples
from makemore.errors import ConfigError
from makemore.train import Trainer

from conftest import CORPUS, VOCAB, assert_one_line_error, cli

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # CPU-only tests, as torch's; JAX_PLATFORMS=cuda checks a GPU
# JAX, Flax and optax are imported by the tests that use them: 3 s at collection, in every worker of pytest -n
pytestmark = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("jax", "flax", "optax")),
                                reason="JAX is not installed (pip install makemore[jax])")

TINY = {"hierarchical": dict(block_size=8, n_embd=6, n_hidden=16), "conv": dict(block_size=8, n_embd=6, n_hidden=16)}


def torch_model(name, seed=0):
    config = models.make_config(name, vocab_size=VOCAB.size, **TINY[name])
    return models.build(name, config, generator=torch.Generator().manual_seed(seed))


def batch(model, n=32):
    X, Y, *_ = examples(model, CORPUS, "train")
    ix = torch.randint(0, len(X), (n,), generator=torch.Generator().manual_seed(1))
    return X[ix], Y[ix]


def assert_same_logits(tm, jm, X, Y):
    """Every position's logits (windows: (B, V); whole words: (B, T, V)), the loss, and the running statistics
    after the pass (which train mode updates)."""
    import jax.numpy as jnp

    logits, loss = tm(X, Y)
    jlogits, jloss = jm(jnp.asarray(X.numpy()), jnp.asarray(Y.numpy()))
    np.testing.assert_allclose(np.array(jlogits), logits.detach().numpy(), atol=1e-5, rtol=0)
    assert float(jloss) == pytest.approx(loss.item(), abs=1e-5)
    from makemore.jax.models import torch_state

    for key, value in torch_state(jm).items():
        np.testing.assert_allclose(value.numpy(), tm.state_dict()[key].numpy(), atol=1e-5, rtol=0, err_msg=key)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_torch_to_jax_gives_the_same_logits(name, training):
    from makemore.jax.models import set_training, to_jax

    tm = torch_model(name)
    tm(*batch(tm, 64))  # some running statistics that are not the initial ones
    jm = to_jax(name, tm)
    tm.train(training)
    set_training(jm, training)
    assert_same_logits(tm, jm, *batch(tm))


@functools.cache
def trained_in_jax(name):
    """A JaxTrainer run to its end (once per family: the eval and train cases share it)."""
    from makemore.jax.train import JaxTrainer

    tm = torch_model(name)
    trainer = JaxTrainer(name, tm, TrainConfig(steps=50, batch_size=16, eval_every=10**9), examples(tm, CORPUS, "train"),
                         examples(tm, CORPUS, "val"), torch.Generator().manual_seed(0))
    trainer.run()
    return trainer


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_jax_to_torch_gives_the_same_logits(name, training):
    """JAX weights that torch never had (trained in JAX), loaded into a fresh torch model."""
    from flax import nnx

    from makemore.jax.models import set_training, to_torch

    trainer = trained_in_jax(name)
    jm, _ = nnx.merge(trainer.graph, trainer.state)  # a model of its own: set_training below leaves the trainer's
    fresh = to_torch(jm, torch_model(name, seed=7))
    fresh.train(training)
    set_training(jm, training)
    assert_same_logits(fresh, jm, *batch(fresh))


@pytest.mark.parametrize("name, optimizer, schedule", [("hierarchical", "sgd", "step"), ("conv", "adamw", "cosine")])
def test_jax_training_follows_torch_training(name, optimizer, schedule):
    """The same initial weights, the same batches, the same optimizer and schedule: the logged losses and the
    final weights agree with the PyTorch Trainer's (float32 rounding apart)."""
    from makemore.jax.train import JaxTrainer

    cfg = TrainConfig(steps=300, batch_size=16, optimizer=optimizer, lr=0.1 if optimizer == "sgd" else 0.01,
                      schedule=schedule, weight_decay=0.01, eval_every=100, log_every=50)
    runs = {}
    for backend in ("torch", "jax"):
        tm = torch_model(name)
        data = examples(tm, CORPUS, "train"), examples(tm, CORPUS, "val")
        generator = torch.Generator().manual_seed(0)
        if backend == "torch":
            trainer = Trainer(tm, cfg, *data, generator, torch.device("cpu"))
        else:
            trainer = JaxTrainer(name, tm, cfg, *data, generator)
        logs = []
        trainer.add_callback(lambda t, e: logs.append(dict(t.last_log)) if e == "log" else None)
        result = trainer.run()
        runs[backend] = logs, result, {k: v.clone() for k, v in trainer.model.state_dict().items()}
    (tlogs, tres, tstate), (jlogs, jres, jstate) = runs["torch"], runs["jax"]
    assert [x["step"] for x in jlogs] == [x["step"] for x in tlogs]
    for a, b in zip(tlogs, jlogs):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-3) and b["lr"] == pytest.approx(a["lr"], rel=1e-6)
    assert jres["val_loss"] == pytest.approx(tres["val_loss"], abs=1e-3)
    for key in tstate:
        np.testing.assert_allclose(jstate[key].numpy(), tstate[key].numpy(), atol=2e-3, rtol=0, err_msg=key)


def test_cli_trains_with_jax_and_samples_from_the_run(tmp_path, word_file):
    run = tmp_path / "run"
    result = cli("train", word_file, "--backend", "jax", "--model", "conv", "--steps", 100, "--eval-every", 50,
                     "--out", run, "--samples", 3)
    assert result.returncode == 0, result.stderr
    sample = cli("sample", run, "-n", 5, "--seed", 0)
    assert sample.returncode == 0, sample.stderr
    assert len(sample.stdout.splitlines()) == 6  # five names and the novelty line
    evaluated = cli("eval", run, "--split", "val")
    assert evaluated.returncode == 0 and evaluated.stdout.strip() == [
        line for line in result.stdout.splitlines() if line.startswith("val ")][0]
    assert_one_line_error(cli("train", "--resume", run), "a run of the jax backend cannot be resumed")


def test_models_without_a_port_are_named(tmp_path, word_file):
    assert_one_line_error(cli("train", word_file, "--backend", "jax", "--model", "wavenet", "--out", tmp_path / "r"),
                          "--backend: model 'wavenet' has no JAX port; JAX models: hierarchical, conv")


def test_without_jax_installed_the_message_says_how(monkeypatch):
    from makemore.jax import require

    monkeypatch.setitem(sys.modules, "optax", None)
    with pytest.raises(ConfigError, match=r"backend: jax: optax is not installed; pip install 'makemore\[jax\]'"):
        require()
