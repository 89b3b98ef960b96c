"""makemore diagnose: hooks see what the lecture's hand-written loop sees; the update:data ratio is the
lecture's; TensorBoard gets the same scalars as metrics.jsonl."""

import json
import math
import sys

import pytest
import torch

from makemore.callbacks import TensorBoard, UpdateRatios
from makemore.config import TrainConfig
from makemore.data import IGNORE, examples
from makemore.diagnose import SATURATED, collect, summarize
from makemore.errors import ConfigError
from makemore.scratch import Tanh
from makemore.train import Trainer

from conftest import CORPUS, TINY, assert_one_line_error, build, cli


def batch_of(model, n=24, seed=0):
    data = examples(model, CORPUS, "train")
    ix = torch.randint(0, len(data[0]), (n,), generator=torch.Generator().manual_seed(seed))
    return [t[ix] for t in data]


def test_hooks_see_what_the_lectures_loop_sees():
    """The lecture runs its layers by hand and calls retain_grad() on each Tanh's output; the hooks must
    collect the same outputs and gradients, and the saturation share is |t| > 0.97 of those outputs."""
    model = build("hierarchical")
    batch = batch_of(model)
    layers, weights = collect(model, [batch])

    model.train()
    x, seen = batch[0], []
    for layer in model.net.layers:
        x = layer(x)
        if isinstance(layer, Tanh):
            x.retain_grad()
            seen.append(x)
    torch.nn.functional.cross_entropy(x, batch[1]).backward()

    assert [layer.name for layer in layers] == [f"net.layers.{k}" for k in (4, 8, 12)]
    for layer, out in zip(layers, seen):
        assert torch.equal(torch.cat(layer.outputs), out.detach().flatten())
        assert torch.equal(torch.cat(layer.grads), out.grad.flatten())
    rows = summarize(layers, weights)["layers"]
    for row, out in zip(rows, seen):
        assert row["saturated"] == pytest.approx((out.abs() > SATURATED).float().mean().item())
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            assert torch.equal(weights[name]["grad"], p.grad.flatten())


def test_sequence_models_leave_padding_out():
    model = build("gru")
    batch = batch_of(model)
    layers, _ = collect(model, [batch])
    real = (batch[1] != IGNORE).sum().item()
    assert [layer.name for layer in layers] == ["rnn"]
    assert len(torch.cat(layers[0].outputs)) == real * TINY["gru"]["n_hidden"]
    assert len(torch.cat(layers[0].grads)) == real * TINY["gru"]["n_hidden"]


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_model_has_layers_to_watch(name):
    model = build(name)
    if name in ("bigram", "ngram"):
        model.fit(*examples(model, CORPUS, "train")[:2])
    layers, weights = collect(model, [batch_of(model)])
    rows = summarize(layers, weights)["layers"]
    assert layers and all(math.isfinite(r["mean"]) and r["std"] > 0 for r in rows)
    if name not in ("bigram", "ngram"):  # a count table has nothing to differentiate
        assert weights and all(r["grad_std"] > 0 for r in rows)
    if name in ("hierarchical", "conv", "wavenet", "rnn"):  # tanh layers report their saturation
        assert any(r["saturated"] is not None for r in rows)


def test_update_ratio_is_the_lectures_for_sgd(tmp_path):
    """With plain SGD the update is -lr * grad, and the lecture's ratio is std(lr * grad) / std(p) after the
    step: the tracked ratio, taken from the weights' actual change, must agree."""
    model = build("hierarchical")
    data = examples(model, CORPUS, "train")
    trainer = Trainer(model, TrainConfig(steps=30, batch_size=16, eval_every=10**9, log_every=10), data, data,
                      torch.Generator().manual_seed(0), torch.device("cpu"))
    trainer.add_callback(UpdateRatios(tmp_path, trainer))
    lecture = {}

    def lecture_ud(t, event):
        if event == "step":
            lr = t.optimizer.param_groups[0]["lr"]
            lecture[t.step] = {n: ((lr * p.grad).std() / p.data.std()).log10().item()
                               for n, p in t.model.named_parameters() if p.ndim >= 2}

    trainer.add_callback(lecture_ud)
    trainer.run()
    records = [json.loads(line) for line in (tmp_path / UpdateRatios.FILE).read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 31))  # every step of the first 1,000
    for r in records:
        for name, value in r["update_ratio"].items():
            assert value == pytest.approx(lecture[r["step"]][name], abs=1e-4)


def test_diagnose_cli_writes_the_figures(tmp_path, word_file):
    run = tmp_path / "run"
    result = cli("train", word_file, "--model", "wavenet", "--n-embd", 8, "--n-skip", 16, "--steps", 40,
                     "--eval-every", 20, "--batch-size", 8, "--out", run, "--samples", 0,
                     "--track-stats", "--tensorboard")
    assert result.returncode == 0, result.stderr
    result = cli("diagnose", run, "--batches", 2)
    assert result.returncode == 0, result.stderr
    for png in ("activations.png", "gradients.png", "update_ratio.png"):
        assert (run / "diagnose" / png).read_bytes()[:4] == b"\x89PNG"
    assert "blocks.0.tanh" in result.stdout and "%" in result.stdout
    init = cli("diagnose", run, "--init", "--out", tmp_path / "init")
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "init" / "activations.png").exists()

    # TensorBoard: the val losses it holds are metrics.jsonl's
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("loss/val")]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    expected = [(m["step"], m["val_loss"]) for m in metrics if "val_loss" in m]
    assert [s for s, _ in logged] == [s for s, _ in expected] == [20, 40]
    assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-6)


def test_tensorboard_missing_is_a_one_line_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now fails, as if not installed
    with pytest.raises(ConfigError, match="tensorboard: tensorboard is not installed; pip install tensorboard"):
        TensorBoard(tmp_path)


def test_diagnose_of_a_missing_run(tmp_path):
    assert_one_line_error(cli("diagnose", tmp_path / "nope"), "nope: no such run folder")
