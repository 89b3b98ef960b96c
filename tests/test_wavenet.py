"""The tree as a dilated causal convolution, the paper's gated WaveNet, and cached generation."""

import pytest
import torch

from makemore.config import TrainConfig
from makemore.data import IGNORE, Corpus, Vocab, build_sequences, build_windows, examples
from makemore.errors import ConfigError
from makemore.models.wavenet import ConvTree, GatedResidualBlock
from makemore.sample import generate
from makemore.train import evaluate
from makemore.trainers import make_trainer

from conftest import CORPUS, ITEMS, VOCAB, assert_one_line_error, build, cli, trained


def test_conv_equals_the_lectures_tree_at_every_val_position(names):
    """A trained hierarchical model's weights, loaded into the conv model: every position of every val word
    gets the windowed model's logits."""
    corpus = Corpus("names", names, Vocab.from_items(names))
    trainer = make_trainer(corpus, "hierarchical", {}, TrainConfig(steps=100, eval_every=10**9, device="cpu"))
    trainer.run()
    tree = trainer.model.eval()
    conv = ConvTree.from_hierarchical(tree).eval()
    _, val, _ = corpus.split()
    Xw, Yw = build_windows(val, corpus.vocab, 8)
    Xs, Ys = build_sequences(val, corpus.vocab)
    assert (Ys != IGNORE).sum().item() == len(Yw) == 22655  # the same per-position targets as the lecture
    with torch.no_grad():
        windowed = tree(Xw)[0]  # (22655, V)
        positions = conv(Xs)[0][Ys != IGNORE]  # (22655, V), in the same order
    torch.testing.assert_close(positions, windowed, atol=1e-5, rtol=0)
    assert torch.equal(Ys[Ys != IGNORE], Yw)
    assert evaluate(conv, (Xs, Ys)) == pytest.approx(evaluate(tree, (Xw, Yw)), abs=1e-6)


@pytest.mark.parametrize("block_size", [2, 4, 16, 32])
def test_conv_equals_tree_at_any_depth(block_size):
    tree = trained("hierarchical", block_size=block_size)
    conv = ConvTree.from_hierarchical(tree).eval()
    Xw, _ = build_windows(ITEMS, VOCAB, block_size)
    Xs, Ys = build_sequences(ITEMS, VOCAB)
    with torch.no_grad():
        torch.testing.assert_close(conv(Xs)[0][Ys != IGNORE], tree(Xw)[0], atol=1e-5, rtol=0)


def test_whole_sequence_batchnorm_ignores_padding():
    """In training mode, what stands at padding positions changes neither the valid positions' logits nor the
    running statistics, and the batch statistics are those of the valid positions."""
    model = build("wavenet").train()
    X, Y = examples(model, CORPUS, "train")
    X, Y = X[:32], Y[:32]
    scrambled = torch.where(Y == IGNORE, torch.randint(1, VOCAB.size, X.shape), X)
    twin = build("wavenet").train()
    a, b = model(X, Y)[0], twin(scrambled, Y)[0]
    torch.testing.assert_close(a[Y != IGNORE], b[Y != IGNORE])
    first_norm = model.blocks[0].norm.norm
    torch.testing.assert_close(first_norm.running_mean, twin.blocks[0].norm.norm.running_mean)
    with torch.no_grad():
        h = model.blocks[0].conv(model.embedding(X))[Y != IGNORE]  # the valid positions' pre-norm activations
    torch.testing.assert_close(first_norm.running_mean, 0.1 * h.mean(0))


def test_gated_activation_unit():
    block = GatedResidualBlock(4, 6, kernel_size=2, dilation=1, norm="none")
    x = torch.randn(3, 5, 4)
    h = block.conv(x)
    z = torch.tanh(h[..., :4]) * torch.sigmoid(h[..., 4:])
    out, skip = block(x)
    torch.testing.assert_close(out, x + block.residual(z))
    torch.testing.assert_close(skip, block.skip(z))


@pytest.mark.parametrize("stacks, kernel, block_size, expected", [(1, 2, 16, 16), (1, 2, 11, 16), (2, 2, 16, 31),
                                                                  (1, 3, 9, 9), (3, 2, 4, 4), (3, 2, 10, 10)])
def test_receptive_field(stacks, kernel, block_size, expected):
    model = build("wavenet", n_stacks=stacks, kernel_size=kernel, block_size=block_size)
    assert model.receptive_field == expected
    X = torch.randint(1, VOCAB.size, (1, 40), generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        base = model(X)[0]
        for j in range(X.shape[1] - 1):
            changed = X.clone()
            changed[0, j] = 5 if X[0, j] != 5 else 6
            seen = (model(changed)[0] != base).any(-1)[0].nonzero().flatten()
            assert seen.min() == j and seen.max() == min(j + expected - 1, X.shape[1] - 1)  # exactly the field


def test_default_receptive_field_covers_the_longest_item():
    trainer = make_trainer(CORPUS, "wavenet", dict(n_embd=8, n_skip=8), TrainConfig(steps=1, device="cpu"))
    assert trainer.model.config.block_size == max(map(len, ITEMS)) + 1
    assert trainer.model.receptive_field >= max(map(len, ITEMS)) + 1


CACHED = {
    "hierarchical": {},
    "conv": {},
    "wavenet": {},
    "wavenet-layernorm-2-stacks": dict(norm="layer", n_stacks=2, block_size=8),
    "wavenet-no-norm-kernel-3": dict(norm="none", kernel_size=3, block_size=9),
    "rnn": {},
    "gru": {},
    "gru-2-layers": dict(n_layers=2),
    "lstm": {},
    "transformer": dict(block_size=32),
    "transformer-4-heads-3-layers": dict(block_size=32, n_head=4, n_layers=3),
    "ngram": dict(block_size=4),
    "gru+ngram-3-networks": dict(networks=3),  # each network steps with its own cache, the mixture mixes them
}


@pytest.mark.parametrize("case", CACHED)
def test_cached_generation_equals_naive(case):
    model = trained(case.split("-")[0], **CACHED[case])
    if case.startswith("gru+ngram"):
        model.share.fill_(0.3), model.network_weights.copy_(torch.tensor([0.5, 0.3, 0.2]))
    names = {}
    for cached in (True, False):
        g = torch.Generator().manual_seed(11)
        names[cached] = generate(model, VOCAB, 300, max_len=40, generator=g, cached=cached)
        g = torch.Generator().manual_seed(12)
        names[cached] += generate(model, VOCAB, 50, max_len=40, generator=g, cached=cached, prefix="ma",
                                  temperature=0.7, top_k=5)
    assert names[True] == names[False]
    assert len(set(names[True])) > 100  # really sampled, not one word repeated


@pytest.mark.parametrize("case", [case for case in CACHED if "+" not in case])  # a mixture steps by its members
def test_cached_step_logits_equal_forward(case):
    model = trained(case.split("-")[0], **CACHED[case])
    X, Y = build_sequences(ITEMS[:20], VOCAB)
    cache = model.init_cache(20)
    with torch.no_grad():
        steps = torch.stack([model.step(X[:, t], cache) for t in range(X.shape[1])], dim=1)  # (B, T, V)
        if model.windowed:  # the tree itself, on the windows
            full = model(build_windows(ITEMS[:20], VOCAB, model.config.block_size)[0])[0]
        else:
            full = model(X)[0][Y != IGNORE]
    torch.testing.assert_close(steps[Y != IGNORE], full, atol=1e-5, rtol=0)


def test_a_gru_steps_in_chunks_as_in_one(monkeypatch):
    """A GRU's generation step computes CHUNK rows at a time: every row's state and logits are those of one chunk."""
    from makemore.models import rnn

    model = trained("gru", n_layers=2)
    X, _ = build_sequences(ITEMS[:20], VOCAB)
    out, whole = {}, rnn.CHUNK
    for chunk in (whole, 7):
        monkeypatch.setattr(rnn, "CHUNK", chunk)
        cache = model.init_cache(20)
        with torch.no_grad():
            out[chunk] = torch.stack([model.step(X[:, t], cache) for t in range(X.shape[1])], dim=1)
    torch.testing.assert_close(out[7], out[whole], atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- global conditioning


def conditioned_model():
    model = build("wavenet", n_classes=2)
    return model.eval()


def test_class_changes_every_position():
    model = conditioned_model()
    X, _ = build_sequences(ITEMS[:4], VOCAB)
    with torch.no_grad():
        a = model(X, None, torch.zeros(4, dtype=torch.long))[0]
        b = model(X, None, torch.ones(4, dtype=torch.long))[0]
    assert (a - b).abs().amax(-1).min() > 0
    with pytest.raises(ConfigError, match="cls: required: this model is conditioned on a class"):
        model(X)


def test_conditioned_cached_equals_naive():
    model = conditioned_model()
    out = [generate(model, VOCAB, 100, max_len=30, generator=torch.Generator().manual_seed(1), cls=1, cached=c)
           for c in (True, False)]
    assert out[0] == out[1]


@pytest.fixture(scope="module")
def two_lists_run(two_lists, tmp_path_factory):
    run = tmp_path_factory.mktemp("cond") / "run"
    result = cli("train", *two_lists, "--condition", "file", "--model", "wavenet", "--n-embd", 16, "--n-skip", 32,
                     "--optimizer", "adamw", "--lr", 0.01, "--steps", 150, "--batch-size", 32, "--out", run,
                     "--samples", 3)
    assert result.returncode == 0, result.stderr
    assert "class soft:" in result.stdout and "class hard:" in result.stdout
    return run


def test_sample_in_a_class_style(two_lists_run):
    hard = cli("sample", two_lists_run, "--class", "hard", "-n", 40, "--seed", 1)
    soft = cli("sample", two_lists_run, "--class", "soft", "-n", 40, "--seed", 1)
    assert hard.returncode == soft.returncode == 0, hard.stderr + soft.stderr
    hard_names = hard.stdout.splitlines()[:-1]
    soft_names = soft.stdout.splitlines()[:-1]
    assert sum(n.startswith("k") for n in hard_names) > 30  # every "hard" item starts with k
    assert sum(n.startswith("k") for n in soft_names) < 10  # no "soft" item has a k


def test_unknown_class_lists_the_valid_ones(two_lists_run):
    assert_one_line_error(cli("sample", two_lists_run, "--class", "medium"),
                          "--class: unknown class 'medium'; valid classes: soft, hard")
    assert_one_line_error(cli("sample", two_lists_run), "--class: required; valid classes: soft, hard")


def test_class_for_an_unconditioned_model(tmp_path, word_file):
    run = tmp_path / "run"
    assert cli("train", word_file, "--model", "bigram", "--out", run).returncode == 0
    assert_one_line_error(cli("sample", run, "--class", "x"), "is not conditioned on classes")


def test_condition_needs_a_conditioned_model(tmp_path, word_file):
    assert_one_line_error(cli("train", word_file, word_file, "--condition", "file", "--model", "hierarchical", "--steps", 1,
                                  "--out", tmp_path / "r"), "--condition: file: two files have the same name")
    other = tmp_path / "other.txt"
    other.write_text(word_file.read_text(encoding="utf-8"), encoding="utf-8")
    assert_one_line_error(cli("train", word_file, other, "--condition", "file", "--model", "hierarchical", "--steps", 1,
                                  "--out", tmp_path / "r"), "--condition: model 'hierarchical' takes no class")
