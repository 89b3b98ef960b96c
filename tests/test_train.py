import copy
import io

import pytest
import torch

from makemore import models
from makemore.config import TrainConfig
from makemore.data import Vocab, build_windows, lecture_split
from makemore.optim import AdamW
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


def adamw_pair():
    """The same small model twice, with one parameter that never gets a gradient (it must keep no state)."""
    torch.manual_seed(3)
    a = torch.nn.Sequential(torch.nn.Embedding(11, 6), torch.nn.Linear(6, 11), torch.nn.Linear(4, 4))
    b = copy.deepcopy(a)
    return a, b


def adamw_steps(model, optimizer, steps, seed):
    g = torch.Generator().manual_seed(seed)
    for k in range(steps):
        idx = torch.randint(0, 11, (8,), generator=g)
        loss = torch.nn.functional.cross_entropy(model[1](model[0](idx)), torch.randint(0, 11, (8,), generator=g))
        optimizer.zero_grad()
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = 0.03 * (1 - k / (2 * steps))  # as the schedule sets it before each step
        optimizer.step()


def test_adamw_equals_torchs_fused_adamw_bit_for_bit_and_their_states_load_into_each_other():
    ours, theirs = adamw_pair()
    opt_ours = AdamW(ours.parameters(), lr=0.03, weight_decay=0.1)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=0.03, weight_decay=0.1, fused=True)
    adamw_steps(ours, opt_ours, 20, seed=0)
    adamw_steps(theirs, opt_theirs, 20, seed=0)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    assert len(opt_ours.state) == 3  # the embedding and the first Linear; the unused Linear(4, 4) has none
    # swapped: torch's state goes on in ours and ours in torch's, through a save to bytes as in a checkpoint
    saved = {}
    for name, opt in (("ours", opt_ours), ("theirs", opt_theirs)):
        buffer = io.BytesIO()
        torch.save(opt.state_dict(), buffer)
        saved[name] = torch.load(io.BytesIO(buffer.getvalue()))
    opt_ours, opt_theirs = AdamW(ours.parameters()), torch.optim.AdamW(theirs.parameters(), fused=True)
    opt_ours.load_state_dict(saved["theirs"])
    opt_theirs.load_state_dict(saved["ours"])
    adamw_steps(ours, opt_ours, 10, seed=1)
    adamw_steps(theirs, opt_theirs, 10, seed=1)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
