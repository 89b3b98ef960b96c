"""Distillation: a model that learns from a teacher run's next-character distributions as well as from the true
characters (--teacher RUN --distill SHARE)."""

import json

import pytest
import torch
import torch.nn.functional as F

from makemore.config import TrainConfig
from makemore.data import IGNORE, build_sequences, build_windows
from makemore.models.base import position_logits
from makemore.run import load_run
from makemore.train import distilled_loss
from makemore.trainers import make_trainer, resume_trainer, teacher_targets

from conftest import CORPUS, TINY, assert_one_line_error, build, cli, train_into


def train(folder, name, options, cfg, kill_at=None, trainer=None):
    return train_into(folder, trainer or make_trainer(CORPUS, name, options, cfg), name, kill_at)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A GRU trained on the tests' corpus: a teacher with a distribution of its own at every position."""
    folder = tmp_path_factory.mktemp("teacher") / "gru"
    cfg = TrainConfig(steps=80, batch_size=16, optimizer="adamw", lr=0.02, eval_every=40, device="cpu")
    train(folder, "gru", TINY["gru"], cfg)
    return folder


def test_the_distilled_loss_is_the_cross_entropy_against_the_mixed_target():
    torch.manual_seed(0)
    logits = torch.randn(4, 6, 5)
    targets = torch.randint(0, 5, (4, 6))
    targets[:, 4:] = IGNORE
    targets[0, 2:] = IGNORE
    teacher = F.softmax(torch.randn(4, 6, 5), dim=-1)
    for share in (0.0, 0.3, 1.0):
        by_hand = []
        for b in range(4):
            for t in range(6):
                if targets[b, t] != IGNORE:
                    q = share * teacher[b, t] + (1 - share) * F.one_hot(targets[b, t], 5)
                    by_hand.append(-(q * F.log_softmax(logits[b, t], -1)).sum())
        assert distilled_loss(logits, targets, teacher, share).item() == pytest.approx(torch.stack(by_hand).mean().item(),
                                                                                      abs=1e-6)
    assert distilled_loss(logits, targets, teacher, 0.0).item() == pytest.approx(
        F.cross_entropy(logits.reshape(-1, 5), targets.reshape(-1), ignore_index=IGNORE).item(), abs=1e-6)


@pytest.mark.parametrize("student", ["gru", "mlp"])
def test_the_teachers_distributions_are_laid_out_as_the_students_targets(teacher, student):
    """Whole words: the teacher's distribution at (word, position); windows: the same, in the windows' order,
    which is the words' positions in order."""
    model = build(student)
    probs = teacher_targets(str(teacher), CORPUS, model)
    words = CORPUS.split()[0]
    X, Y = build_sequences(words, CORPUS.vocab, CORPUS.longest + 1)
    with torch.no_grad():
        expected = F.softmax(load_run(teacher).model(X)[0], dim=-1)  # (N, T, V)
    if model.windowed:
        _, Y_windows = build_windows(words, CORPUS.vocab, model.config.block_size)
        assert torch.equal(Y_windows, Y[Y != IGNORE])  # the windows follow the positions
        assert probs.shape == (len(Y_windows), CORPUS.vocab.size)
        torch.testing.assert_close(probs, expected[Y != IGNORE])
    else:
        assert probs.shape == expected.shape
        torch.testing.assert_close(probs[Y != IGNORE], expected[Y != IGNORE])
        assert probs[Y == IGNORE].abs().sum() == 0
    torch.testing.assert_close(probs.sum(-1)[probs.sum(-1) > 0], torch.ones(len(Y[Y != IGNORE])))


def test_a_window_teacher_is_read_at_every_position(tmp_path):
    """An MLP teacher of a GRU student: each position's distribution from its own window."""
    folder = tmp_path / "mlp"
    train(folder, "mlp", TINY["mlp"], TrainConfig(steps=20, batch_size=16, eval_every=20, device="cpu"))
    probs = teacher_targets(str(folder), CORPUS, build("gru"))
    mlp = load_run(folder).model
    X, Y = build_windows(CORPUS.split()[0], CORPUS.vocab, mlp.config.block_size)
    Xs, Ys = build_sequences(CORPUS.split()[0], CORPUS.vocab, CORPUS.longest + 1)
    with torch.no_grad():
        torch.testing.assert_close(probs[Ys != IGNORE], F.softmax(mlp(X)[0], dim=-1))
        torch.testing.assert_close(position_logits(mlp, Xs)[Ys != IGNORE], mlp(X)[0])


def kl_to(teacher_folder, model):
    """The mean KL divergence from the teacher's distribution to the model's, over the training targets."""
    probs = teacher_targets(str(teacher_folder), CORPUS, model)
    X, Y = build_sequences(CORPUS.split()[0], CORPUS.vocab, CORPUS.longest + 1)
    with torch.no_grad():
        logp = F.log_softmax(model.eval()(X)[0], dim=-1)[Y != IGNORE]
    p = probs[Y != IGNORE]
    return (p * (p.clamp_min(1e-12).log() - logp)).sum(-1).mean().item()


def test_a_student_of_share_1_learns_the_teachers_distribution_not_the_data(tmp_path):
    """A bigram teacher knows only the last character; a GRU taught by it alone comes much nearer to it than
    the same GRU taught by the true characters, which learns more than the last character."""
    bigram = tmp_path / "bigram"
    train(bigram, "bigram", {}, TrainConfig(steps=1, device="cpu"))
    kl = {}
    for share in (0.0, 1.0):
        cfg = TrainConfig(steps=150, batch_size=32, optimizer="adamw", lr=0.02, eval_every=150, device="cpu",
                          teacher=str(bigram), distill=share)
        trainer = train(tmp_path / f"share{share}", "gru", dict(n_embd=8, n_hidden=32), cfg)
        kl[share] = kl_to(bigram, trainer.model)
    assert kl[1.0] < 0.02 and kl[1.0] < kl[0.0] / 3, kl


def test_a_resumed_distilled_run_equals_an_uninterrupted_one(tmp_path, teacher):
    cfg = TrainConfig(steps=60, batch_size=16, eval_every=20, device="cpu", optimizer="adamw", lr=0.01,
                      teacher=str(teacher), distill=0.7)
    options = dict(n_embd=8, n_hidden=24, dropout=0.1)
    whole = train(tmp_path / "whole", "gru", options, cfg)
    assert train(tmp_path / "killed", "gru", options, cfg, kill_at=50) is None
    torch.manual_seed(7)
    resumed = train(tmp_path / "killed", "gru", options, cfg, trainer=resume_trainer(load_run(tmp_path / "killed")))
    assert (resumed.step, resumed.best) == (whole.step, whole.best)
    a, b = load_run(tmp_path / "whole").model.state_dict(), load_run(tmp_path / "killed").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_teacher_flags(tmp_path, word_file, monkeypatch):
    run_teacher = tmp_path / "teacher"
    assert cli("train", word_file, "--model", "bigram", "--out", run_teacher, "--samples", 0).returncode == 0
    student = ["train", word_file, "--model", "gru", "--steps", 30, "--eval-every", 30, "--optimizer", "adamw",
               "--lr", 0.01, "--samples", 0]
    monkeypatch.chdir(tmp_path)  # a teacher given relative to here is kept absolute: --resume may run elsewhere
    result = cli(*student, "--teacher", "teacher", "--distill", 0.8, "--out", tmp_path / "s")
    assert result.returncode == 0, result.stderr
    train_cfg = json.loads((tmp_path / "s" / "config.json").read_text())["train"]
    assert (train_cfg["teacher"], train_cfg["distill"]) == (str(run_teacher), 0.8)
    assert_one_line_error(cli(*student, "--teacher", tmp_path / "nowhere", "--out", tmp_path / "a"),
                          f"--teacher: {tmp_path / 'nowhere'}: no such run folder")
    other = tmp_path / "other.txt"
    other.write_text("anna\nbob\ncarl\ndora\nemil\nfrank\ngus\nhans\nida\njon\nkai\n", encoding="utf-8")
    assert_one_line_error(cli("train", other, "--model", "gru", "--steps", 5, "--teacher", run_teacher,
                              "--out", tmp_path / "b"), "--teacher: ", "trained on other data")
    assert_one_line_error(cli(*student, "--distill", 1.5, "--out", tmp_path / "c"), "--distill: ")
    assert_one_line_error(cli(*student, "--distill", 0.5, "--out", tmp_path / "d"), "--teacher: needed where distill")
    assert_one_line_error(cli("train", word_file, "--preset", "student", "--out", tmp_path / "e"),
                          "--teacher: needed where distill is set")
    assert_one_line_error(cli("train", word_file, "--model", "hierarchical", "--backend", "jax", "--teacher",
                              run_teacher, "--out", tmp_path / "j"), "--teacher: not in the jax backend")
    assert not any((tmp_path / name).exists() for name in "abcde")
