import math

import pytest
import torch

from makemore import checkpoint, models
from makemore.config import TrainConfig
from makemore.data import IGNORE, build_sequences, build_windows, examples
from makemore.errors import ConfigError
from makemore.models import base, rnn
from makemore.models.base import dropout, target_logprobs, target_probs
from makemore.run import load_run
from makemore.train import evaluate

from conftest import CORPUS, ITEMS, TINY, VOCAB, build, trained


def all_inputs(model):
    """Every example of the items as the model sees them (windows, or whole sequences)."""
    return examples(model, CORPUS, "train")


def test_every_model_is_registered_and_tested():
    assert set(TINY) == set(models.MODELS)


def test_unknown_model_lists_the_valid_ones():
    valid = "bigram, mlp, hierarchical, conv, wavenet, rnn"
    with pytest.raises(ConfigError, match=f"unknown model 'wavenet2'; valid models: {valid}"):
        models.lookup("wavenet2")


def test_unknown_option_names_it():
    with pytest.raises(ConfigError, match="n_hidden: model 'bigram' has no such option"):
        models.make_config("bigram", n_hidden=3)


@pytest.mark.parametrize("name, options, params", [
    ("hierarchical", dict(n_embd=24, n_hidden=128), 76_579),  # the lecture's model
    ("hierarchical", dict(n_embd=10, n_hidden=68), 22_397),
    ("mlp", dict(block_size=3, n_embd=10, n_hidden=200), 12_097),
    ("mlp", dict(block_size=8, n_embd=10, n_hidden=200), 22_097),
    ("bigram", dict(), 27 * 27),
])
def test_lecture_parameter_counts(name, options, params):
    model = models.build(name, models.make_config(name, vocab_size=27, **options))
    assert models.num_params(model) == params


@pytest.mark.parametrize("levels", [1, 2, 4, 5])
def test_hierarchical_any_depth(levels):
    model = build("hierarchical", block_size=2**levels)
    logits, loss = model(torch.randint(0, VOCAB.size, (4, 2**levels)), torch.zeros(4, dtype=torch.long))
    assert logits.shape == (4, VOCAB.size) and loss.ndim == 0


def test_hierarchical_context_must_be_a_power_of_two():
    with pytest.raises(ConfigError, match="block_size: the tree needs a power of 2"):
        build("hierarchical", block_size=6)


@pytest.mark.parametrize("name", TINY)
def test_logits_shape_and_initial_loss(name):
    model = build(name)
    X, Y = all_inputs(model)
    logits, loss = model(X[:64], Y[:64])
    assert logits.shape == ((64, VOCAB.size) if model.windowed else (64, X.shape[1], VOCAB.size))
    assert loss.item() == pytest.approx(math.log(VOCAB.size), abs=0.15)  # near uniform at init


def position_logits(model, word, vocab=VOCAB):
    """(len(word) + 1, V): position i predicts character i (the end token at i = len(word))."""
    with torch.no_grad():
        if model.windowed:
            return model(build_windows([word], vocab, model.config.block_size)[0])[0]
        X, Y = build_sequences([word], vocab)
        return model(X)[0][0, : len(word) + 1]


@pytest.mark.parametrize("name", TINY)
def test_causality(name):
    """Changing a later character never changes an earlier position's logits."""
    model = trained(name)
    word = "marijosélu"
    base = position_logits(model, word)
    for j in range(len(word)):
        changed = word[:j] + ("a" if word[j] != "a" else "n") + word[j + 1:]
        logits = position_logits(model, changed)
        assert torch.equal(logits[: j + 1], base[: j + 1]), f"position <= {j} saw character {j}"
        assert not torch.equal(logits[j + 1 : j + 2], base[j + 1 : j + 2])  # the next position does see it


@pytest.mark.parametrize("name", TINY)
def test_evaluation_in_batches_of_like_lengths_equals_one_padded_batch(name):
    """Evaluation sorts a split's words by length and cuts each batch after its longest: every target's
    probability, and the mean loss, are those of the whole split as one batch padded to its longest word."""
    model = trained(name)
    X, Y = build_sequences(ITEMS, VOCAB)
    with torch.no_grad():
        whole = target_logprobs(model, X, Y).exp()
    by_length = target_probs(model, (X, Y), batch_size=7)
    assert len(set((Y != IGNORE).sum(1).tolist())) > 3 and len(by_length) == (Y != IGNORE).sum()
    torch.testing.assert_close(by_length, whole, rtol=1e-6, atol=0)
    data = examples(model, CORPUS, "val")
    assert evaluate(model, data, batch_size=7) == pytest.approx(evaluate(model, data, batch_size=len(data[0])), rel=1e-6)
    if not model.windowed:
        assert evaluate(model, (X, Y), batch_size=7) == pytest.approx(-whole.log().mean().item(), rel=1e-6)


def test_an_evaluation_batch_computes_at_most_its_positions(monkeypatch):
    """A batch of whole sequences has at most EVAL_POSITIONS positions (a row longer than that alone): the rows of
    a few long items do not pad a thousand others. The probabilities are those of batches of rows alone."""
    model = trained("gru")
    X, Y = build_sequences(ITEMS + ["a" * 40], VOCAB)
    unbounded = target_probs(model, (X, Y))
    monkeypatch.setattr(base, "EVAL_POSITIONS", 30)
    batches = [(len(rows), y.shape[1]) for rows, (_, y) in base.eval_batches((X, Y))]
    assert all(n * end <= 30 or n == 1 for n, end in batches) and sum(n for n, _ in batches) == len(X)
    assert (1, 41) in batches  # the long item alone
    torch.testing.assert_close(target_probs(model, (X, Y)), unbounded, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", TINY)
def test_checkpoint_round_trip_gives_identical_logits(name, tmp_path):
    model = trained(name)
    cfg = TrainConfig(steps=30)
    checkpoint.save(tmp_path / "model.pt", checkpoint.state(name, model, CORPUS, cfg))
    run = load_run(tmp_path)
    assert run.model_name == name and run.corpus == CORPUS and run.train_config == cfg
    X = all_inputs(model)[0]
    assert torch.equal(run.model(X)[0], model(X)[0])


@pytest.mark.parametrize("name", [name for name in TINY if name not in ("bigram", "ngram")])  # counts cannot be overfitted
def test_can_overfit_one_small_batch(name):
    model = build(name, **({"n_hidden": 64} if name in ("mlp", "hierarchical", "conv") else {}))
    # a window model gets one word's windows; a sequence model 8 whole words, whose shared prefixes leave
    # some next characters uncertain: the loss can only go down to that floor
    words = ITEMS[:1] if model.windowed else ITEMS[:8]
    X, Y = build_windows(words, VOCAB, model.config.block_size) if model.windowed else build_sequences(words, VOCAB)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.02)
    for _ in range(150):  # every family is within 0.02 of the floor by then (the slowest, lstm, 0.057 at 100)
        _, loss = model(X, Y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < prefix_entropy(words) + 0.1, loss.item()  # from about ln(V) = 3.1: it memorised the batch


def prefix_entropy(words) -> float:
    """The least mean loss per position on these words: the entropy of each next character given its prefix."""
    nexts = {}
    for w in words:
        for i in range(len(w) + 1):
            counter = nexts.setdefault(w[:i], {})
            counter[w[i : i + 1]] = counter.get(w[i : i + 1], 0) + 1
    total = sum(-c * math.log(c / sum(counts.values())) for counts in nexts.values() for c in counts.values())
    return total / sum(len(w) + 1 for w in words)


def kneser_ney(windows, targets, V, D):
    """Interpolated Kneser-Ney written out with dicts, as the textbook has it: P(w | h) for a context h."""
    B = len(windows[0])
    occurrences = {}
    for h, w in zip(windows, targets):
        occurrences.setdefault(h, {}).setdefault(w, 0)
        occurrences[h][w] += 1
    tables = {B: occurrences}
    for k in range(B - 1, -1, -1):  # continuations: distinct tokens before (h, w)
        before = {}
        for h, nxt in tables[k + 1].items():
            for w in nxt:
                before.setdefault(h[1:], {}).setdefault(w, set()).add(h[0])
        tables[k] = {h: {w: len(v) for w, v in nxt.items()} for h, nxt in before.items()}

    def p(h, w):
        prob = 1 / V
        for k in range(B + 1):
            c = tables[k].get(h[len(h) - k :] if k else ())
            if c:
                total = sum(c.values())
                prob = (max(c.get(w, 0) - D, 0) + D * len(c) * prob) / total
        return prob
    return p


def test_ngram_is_interpolated_kneser_ney():
    model = build("ngram", block_size=3, discount=0.6)
    X, Y = build_windows(ITEMS, VOCAB, 3)
    model.fit(X, Y)
    reference = kneser_ney([tuple(x) for x in X.tolist()], Y.tolist(), VOCAB.size, 0.6)
    probs = model(X[:200])[0].exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(200))  # a distribution for every context
    for x, row in zip(X[:200].tolist(), probs):
        expected = torch.tensor([reference(tuple(x), w) for w in range(VOCAB.size)])
        torch.testing.assert_close(row, expected)
    unseen = torch.tensor([[5, 5, 5]])  # a context never counted: the lower orders speak
    assert model(unseen)[0].exp().sum().item() == pytest.approx(1.0)


def test_bigram_is_smoothed_counts():
    model = build("bigram", smoothing=1.0)
    X, Y = build_windows(ITEMS, VOCAB, 1)
    model.fit(X, Y)
    counts = torch.zeros(VOCAB.size, VOCAB.size)
    for x, y in zip(X[:, 0].tolist(), Y.tolist()):
        counts[x, y] += 1
    probs = (counts + 1) / (counts + 1).sum(1, keepdim=True)
    logits, loss = model(X, Y)
    torch.testing.assert_close(logits.softmax(-1), probs[X[:, 0]])
    torch.testing.assert_close(loss, -probs[X[:, 0], Y].log().mean())


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_a_recurrent_batch_trained_packed_equals_it_padded(name):
    """Given targets, a recurrent model packs its rows (each time step computes the rows still running): the
    loss and every gradient are those of the padded batch, rows of every length and a row without a target
    among them."""
    torch.manual_seed(0)
    model = build(name, n_layers=2)
    X, Y = all_inputs(model)
    Y = Y.clone()
    Y[0] = IGNORE  # a row with nothing to learn
    assert len(set((Y != IGNORE).sum(1).tolist())) > 3 and X.shape[1] > (Y[1:] != IGNORE).sum(1).min()

    def loss_and_grads(packed):
        model.zero_grad()
        out = model.recur(model.embedding(X), rnn.lengths_of(Y) if packed else None)
        loss = model.loss(model.head(out), Y)
        loss.backward()
        return loss, [p.grad.clone() for p in model.parameters()]

    padded, packed = loss_and_grads(False), loss_and_grads(True)
    torch.testing.assert_close(packed[0], padded[0], rtol=1e-6, atol=0)
    for a, b in zip(packed[1], padded[1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    model.train()
    torch.testing.assert_close(model(X, Y)[1], padded[0], rtol=1e-6, atol=0)  # forward packs given targets
    assert torch.equal(rnn.lengths_of(Y)[:3], torch.tensor([1, *((Y[1:3] != IGNORE).sum(1).tolist())]))


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_weight_drop_drops_whole_recurrent_weights_for_the_batch_and_only_in_training(name):
    """Weight-drop (DropConnect on the hidden-to-hidden weights): a dropped weight takes no part at any position
    of any word of the batch, so exactly its gradient is zero; the input weights are untouched; in eval mode the
    model is the same model without it."""
    torch.manual_seed(0)
    model = build(name, weight_drop=0.5)
    plain = build(name)
    plain.load_state_dict(model.state_dict())
    X, Y = all_inputs(model)
    model.eval(), plain.eval()
    assert torch.equal(model(X)[0], plain(X)[0])
    model.train()
    model(X, Y)[1].backward()
    for layer in range(model.config.n_layers):
        hh, ih = getattr(model.rnn, f"weight_hh_l{layer}").grad, getattr(model.rnn, f"weight_ih_l{layer}").grad
        assert 0.35 < (hh == 0).float().mean() < 0.65  # about half of them, each for the whole batch
        assert (ih == 0).float().mean() < 0.05
    plain.train()
    plain(X, Y)[1].backward()
    assert (plain.rnn.weight_hh_l0.grad == 0).float().mean() < 0.05  # without it, no weight's gradient is zero


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_zeroes_a_share_p_scales_the_rest_and_passes_the_gradient_through_the_same_mask(p):
    torch.manual_seed(0)
    x = torch.randn(64, 16, 192, requires_grad=True)  # 196,608 draws: the kept share's sd is at most 0.0012
    y = dropout(x, p, True)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.006
    assert torch.allclose(y[kept], x[kept] / (1 - p))
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / (1 - p))  # as F.dropout's: the mask, scaled
    assert torch.equal(dropout(x, p, False), x) and torch.equal(dropout(x, 0.0, True), x)
    torch.manual_seed(1)
    first = dropout(x, p, True)
    torch.manual_seed(1)
    assert torch.equal(first, dropout(x, p, True))  # torch's generator: a seed, and a resumed run, repeat it


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_embedding_dropout_only_in_training_and_an_unset_option_draws_nothing(name):
    torch.manual_seed(0)
    model = build(name, emb_dropout=0.5)
    plain = build(name)
    plain.load_state_dict(model.state_dict())
    X, Y = all_inputs(model)
    assert torch.equal(model.eval()(X)[0], plain.eval()(X)[0])
    model.train(), plain.train()
    torch.manual_seed(1)
    dropped = model(X)[0]
    torch.manual_seed(1)
    assert not torch.equal(dropped, plain(X)[0])
    torch.manual_seed(1)
    plain(X)
    after = torch.rand(1)
    torch.manual_seed(1)
    assert torch.equal(after, torch.rand(1))  # a model without the options draws no random number in training
