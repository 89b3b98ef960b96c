import pytest
import torch

from makemore import models
from makemore.config import TrainConfig
from makemore.data import Vocab, build_windows, lecture_split
from makemore.train import Trainer, evaluate

import lecture_loop
from conftest import make_items


def test_lr_schedules():
    cfg = TrainConfig(steps=200_000)
    assert cfg.lr_at(0) == cfg.lr_at(149_999) == 0.1  # the lecture: 0.1, then 0.01 for the last quarter
    assert cfg.lr_at(150_000) == cfg.lr_at(199_999) == pytest.approx(0.01)
    cos = TrainConfig(steps=101, schedule="cosine", lr=1.0, decay_factor=0.1)
    assert cos.lr_at(0) == pytest.approx(1.0) and cos.lr_at(100) == pytest.approx(0.1)
    assert cos.lr_at(50) == pytest.approx(0.55)
    assert TrainConfig(schedule="constant", lr=0.3).lr_at(10**6) == 0.3


def test_training_reproduces_the_lecture_step_for_step(names):
    """Same init order, same torch.randint batches, same arithmetic: the library's default recipe and the
    lecture's notebook loop give bit-identical losses, weights and running statistics."""
    steps = 200
    vocab = Vocab.from_items(names)
    train, val, _ = lecture_split(names)
    Xtr, Ytr = build_windows(train, vocab, 8)
    Xval, Yval = build_windows(val, vocab, 8)

    ref = lecture_loop.lecture_model(vocab.size)
    ref_losses = lecture_loop.lecture_train(ref, Xtr, Ytr, steps)

    generator = torch.Generator().manual_seed(42)
    model = models.build("hierarchical", models.make_config("hierarchical", vocab_size=vocab.size), generator=generator)
    trainer = Trainer(model, TrainConfig(steps=steps, eval_every=10**9, log_every=1), (Xtr, Ytr), (Xval, Yval),
                      generator, torch.device("cpu"))
    losses = []
    trainer.add_callback(lambda t, event: losses.append(t.last_log["loss"]) if event == "log" else None)
    result = trainer.run()

    assert losses == ref_losses
    ours = list(model.parameters())
    theirs = ref.parameters()
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    bn_ours = [m for m in model.modules() if hasattr(m, "running_var")]
    bn_ref = [layer for layer in ref.layers if hasattr(layer, "running_var")]
    for a, b in zip(bn_ours, bn_ref):
        assert torch.equal(a.running_mean, b.running_mean.reshape(-1))
        assert torch.equal(a.running_var, b.running_var.reshape(-1))
    # the lecture's split_loss: the whole split at once, BatchNorm in eval mode
    for layer in ref.layers:
        layer.training = False
    ref_val = torch.nn.functional.cross_entropy(ref(Xval), Yval).item()
    assert result["val_loss"] == pytest.approx(ref_val, abs=1e-6)


def test_same_seed_same_run_different_seed_different_run():
    items = make_items()
    vocab = Vocab.from_items(items)
    data = build_windows(items, vocab, 3)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        model = models.build("mlp", models.make_config("mlp", vocab_size=vocab.size), generator=g)
        Trainer(model, TrainConfig(steps=50, optimizer="adamw", lr=1e-2), data, data, g, torch.device("cpu")).run()
        return evaluate(model, data)

    assert run(1) == run(1)
    assert run(1) != run(2)
