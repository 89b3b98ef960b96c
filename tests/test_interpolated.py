"""A network and an n-gram as one model (the default recipe's gru+ngram): a distribution at every position, the
mixture of its parts computed by hand, the network trained exactly as it trains alone, the n-gram's context
and the share chosen on val, and the sparse n-gram equal to its dense former self."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from makemore import models
from makemore.auto import ngram_context_for
from makemore.config import TrainConfig
from makemore.data import IGNORE, build_sequences, build_windows, examples
from makemore.errors import ConfigError
from makemore.loop import clone_state
from makemore.models.base import evaluating, position_logits, target_probs
from makemore.models.ensemble import best_mixture, fit_weights
from makemore.models.interpolated import DISCOUNTS, Interpolated, with_ngram
from makemore.models.ngram import choose_context, longest_context
from makemore.train import Trainer, evaluate

from conftest import CORPUS, TINY, VOCAB, build, trained


def fitted(name="gru+ngram", share=0.3, **options):
    """A model trained as a run trains it (AdamW), long enough that the network has learned something. Any sequence
    family can be the network: "transformer+ngram" is made here as the registry makes gru+ngram."""
    torch.manual_seed(0)
    if name == "transformer+ngram":
        config = with_ngram("transformer", *models.MODELS["transformer"])(
            vocab_size=VOCAB.size, **TINY["transformer"], ngram_context=2)
        model = Interpolated(config, generator=torch.Generator().manual_seed(0))
    else:
        model = build(name, n_hidden=32, **options)
    cfg = TrainConfig(steps=200, batch_size=16, optimizer="adamw", lr=0.01, eval_every=10**9, device="cpu")
    data = examples(model, CORPUS, "train"), examples(model, CORPUS, "val")
    Trainer(model, cfg, *data, torch.Generator().manual_seed(0), torch.device("cpu")).run()
    model.share.fill_(share)
    return model.eval()


@pytest.mark.parametrize("networks", [1, 3])
def test_every_position_is_a_distribution(networks):
    model = fitted(networks=networks)
    X, _ = examples(model, CORPUS, "val")
    torch.testing.assert_close(model(X)[0].exp().sum(-1), torch.ones(X.shape), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["gru+ngram", "transformer+ngram"])
def test_the_loss_is_the_mixture_of_the_parts_computed_by_hand(name):
    """The network alone (a model of its family with the same weights) and the n-gram alone (a plain n-gram
    counted from the training split's windows), mixed by hand at every target."""
    model = fitted(name, share=0.37)
    network_name = name.removesuffix("+ngram")
    network = build(network_name, **{k: v for k, v in model.members[0].config.__dict__.items()
                                     if k in models.options_of(network_name)})
    network.load_state_dict(model.members[0].state_dict())
    ngram = build("ngram", block_size=model.config.ngram_context, discount=model.discount.item())  # as chosen
    ngram.fit(*build_windows(CORPUS.split()[0], VOCAB, model.config.ngram_context))
    network.eval(), ngram.eval()
    X, Y = examples(model, CORPUS, "val")
    kept = Y != IGNORE
    a = F.softmax(position_logits(network, X), -1)[kept].gather(1, Y[kept][:, None])[:, 0]
    b = F.softmax(position_logits(ngram, X), -1)[kept].gather(1, Y[kept][:, None])[:, 0]
    by_hand = -(0.63 * a + 0.37 * b).log().mean()
    torch.testing.assert_close(model(X, Y)[1], by_hand)
    torch.testing.assert_close(evaluate(model, (X, Y)), by_hand.item())


def test_several_networks_mix_as_computed_by_hand_and_each_is_kept_at_its_best():
    """networks = 3: each evaluation keeps each live network whose mixture with the n-gram has a lower val loss
    than its kept copy's (the copy then equals it); the model is the kept networks' mean mixed with the n-gram at
    the share chosen on val (no share on a grid is lower), as computed by hand from each network alone."""
    torch.manual_seed(0)
    model = build("gru+ngram", n_hidden=32, networks=3)
    cfg = TrainConfig(steps=120, batch_size=24, optimizer="adamw", lr=0.02, eval_every=10, device="cpu")
    val = examples(model, CORPUS, "val")
    trainer = Trainer(model, cfg, examples(model, CORPUS, "train"), val, torch.Generator().manual_seed(0),
                      torch.device("cpu"))
    seen = [[] for _ in range(3)]  # per network: (its mixture's val loss with the n-gram, its weights) at each evaluation

    def before(trainer, event):
        if event == "step" and trainer.step % 10 == 0:  # the weights the evaluation after this step sees
            with evaluating(model):
                ngram = [pair_probs(model.members[-1], val, d) for d in DISCOUNTS]
                for k, net in enumerate(model.live):
                    probs = target_probs(net, val)
                    seen[k].append((min(best_mixture(torch.stack([probs, p], 1))[0] for p in ngram), clone_state(net)))

    trainer.add_callback(before)
    trainer.run()
    for k in range(3):
        loss, state = min(seen[k], key=lambda x: x[0])
        assert model.kept_loss[k].item() == pytest.approx(loss, abs=1e-12)
        assert all(torch.equal(v, model.members[k].state_dict()[key]) for key, v in state.items())
    assert len({round(min(s, key=lambda x: x[0])[0], 9) for s in seen}) == 3  # three networks, not one thrice

    model.eval()
    X, Y = val
    kept = Y != IGNORE
    parts = [F.softmax(position_logits(m, X), -1)[kept].gather(1, Y[kept][:, None])[:, 0] for m in model.members]
    weights = [(1 - model.share.item()) * w for w in model.network_weights.tolist()] + [model.share.item()]
    assert sum(weights) == pytest.approx(1) and min(weights) >= 0
    assert torch.equal(model.network_weights, torch.full((3,), 1 / 3))  # alike networks: equal, none chosen on val
    mean = sum(parts[:-1]) / 3
    chosen = -((1 - model.share) * mean + model.share * parts[-1]).log().mean()
    assert all(-((1 - s) * mean + s * parts[-1]).log().mean() >= chosen - 1e-6 for s in torch.linspace(0, 1, 21))
    by_hand = -sum(w * p for w, p in zip(weights, parts)).log().mean()
    torch.testing.assert_close(model(X, Y)[1], by_hand.float())
    assert model.choose_share(val) == pytest.approx(by_hand.item(), abs=1e-6)  # the weights were chosen on val


def pair_probs(ngram, data, discount):
    ngram.set_discount(discount)
    return target_probs(ngram, data)


def test_the_network_trains_as_it_trains_alone():
    """In training the network learns on its own loss: a gru+ngram's network ends with the weights of a gru
    trained from the same seed on the same batches, though its evaluations choose the mixture's share."""
    cfg = TrainConfig(steps=40, batch_size=16, eval_every=10, optimizer="adamw", lr=0.01, device="cpu")
    ends = []
    for name in ("gru", "gru+ngram"):
        torch.manual_seed(0)
        model = build(name, dropout=0.2)
        data = examples(model, CORPUS, "train"), examples(model, CORPUS, "val")
        Trainer(model, cfg, *data, torch.Generator().manual_seed(0), torch.device("cpu")).run()
        ends.append(model if name == "gru" else model.members[0])
    for key, value in ends[0].state_dict().items():
        assert torch.equal(value, ends[1].state_dict()[key]), key


def test_the_share_is_the_best_on_val_and_its_loss_is_vals():
    model = fitted()
    val = examples(model, CORPUS, "val")
    loss = model.choose_share(val)
    chosen = model.share.item()
    assert 0 < chosen < 1
    assert loss == pytest.approx(evaluate(model, val), abs=1e-5)
    for share in torch.linspace(0, 1, 21).tolist():  # no share on a grid does better
        model.share.fill_(share)
        assert evaluate(model, val) >= loss - 1e-5


def test_the_discount_is_chosen_with_the_share_and_carried_by_the_state():
    """discount = 0 (the default): each evaluation chooses the n-gram's discount among DISCOUNTS with its share;
    the kept state and a checkpoint carry it (a buffer), and a state from before the buffer loads its config's."""
    model = fitted()
    assert model.config.discount == 0
    val = examples(model, CORPUS, "val")
    loss = model.choose_share(val)
    chosen = model.discount.item()
    assert chosen in DISCOUNTS and model.members[1].config.discount == chosen
    assert loss == pytest.approx(evaluate(model, val), abs=1e-5)
    for discount in DISCOUNTS:  # no discount and share on a grid does better
        model.set_discount(discount)
        for share in torch.linspace(0.05, 0.95, 10).tolist():
            model.share.fill_(share)
            assert evaluate(model, val) >= loss - 1e-5

    model.set_discount(0.9)
    X = examples(model, CORPUS, "test")[0][:8]
    copy = Interpolated(model.config)
    copy.load_state_dict(model.state_dict())
    assert copy.members[1].config.discount == 0.9
    torch.testing.assert_close(copy.eval()(X)[0], model(X)[0], atol=0, rtol=0)
    old = {k: v for k, v in model.state_dict().items() if k != "discount"}  # a checkpoint of before
    copy.load_state_dict(old)
    assert copy.members[1].config.discount == DISCOUNTS[0]

    fixed = Interpolated(dataclasses.replace(model.config, discount=0.6))
    fixed.load_state_dict(old)
    fixed.choose_share(val)
    assert fixed.discount.item() == pytest.approx(0.6) and fixed.members[1].config.discount == pytest.approx(0.6)


def test_an_ngram_alone_needs_a_discount():
    with pytest.raises(ConfigError, match="discount"):
        models.build("ngram", models.make_config("ngram", vocab_size=VOCAB.size, discount=0.0))


def test_fit_weights_at_the_ends_and_inside():
    a = torch.tensor([0.5, 0.5, 0.5])
    assert fit_weights(torch.stack([a, a / 2], 1))[1] < 1e-3  # the second model is worse everywhere: none of it
    assert fit_weights(torch.stack([a, a * 1.5], 1))[1] > 1 - 1e-3
    b, c = torch.tensor([0.9, 0.1, 0.5]), torch.tensor([0.2, 0.6, 0.3])
    grid = [(x, y) for x in torch.linspace(0, 1, 201).tolist() for y in torch.linspace(0, 1, 201).tolist() if x + y <= 1]
    loss = lambda w: -(w[0] * a + w[1] * b + (1 - w[0] - w[1]) * c).log().mean().item()  # noqa: E731
    best = min(grid, key=loss)
    weights = fit_weights(torch.stack([a, b, c], 1))
    assert sum(weights) == pytest.approx(1) and loss(weights) <= loss(best) + 1e-6
    assert weights[:2] == pytest.approx(best, abs=0.01)


def test_the_context_is_the_best_alone_plus_one():
    """choose_context's val losses are those of plain n-grams of each context, each counted on its own."""
    top = longest_context(VOCAB.size)
    train, val = (build_windows(part, VOCAB, top) for part in CORPUS.split()[:2])
    context, losses = choose_context(train, val, VOCAB.size)
    for C, loss in enumerate(losses, 1):
        ngram = build("ngram", block_size=C)
        ngram.fit(*build_windows(CORPUS.split()[0], VOCAB, C))
        assert loss == pytest.approx(evaluate(ngram, build_windows(CORPUS.split()[1], VOCAB, C)), abs=1e-5)
    assert context == min(losses.index(min(losses)) + 2, top)
    assert ngram_context_for(CORPUS) == context


def test_the_longest_context_is_numbered_within_the_table():
    assert longest_context(27) == 10
    assert 806 ** (longest_context(806) + 1) < 2**62 <= 806 ** (longest_context(806) + 2)


def test_a_sparse_ngram_loads_a_checkpoint_of_dense_tables():
    """A run of the n-gram saved before its tables were sparse (ids{k}: contexts, counts{k}: (contexts, V))."""
    model = trained("ngram")
    dense = {}
    for k in range(model.config.block_size + 1):
        table = model.tables[k]
        counts = torch.zeros(len(table.contexts), VOCAB.size)
        rows = torch.searchsorted(table.contexts, table.pairs // VOCAB.size)
        counts[rows, table.pairs % VOCAB.size] = table.counts
        dense[f"ids{k}"], dense[f"counts{k}"] = table.contexts, counts
    old = build("ngram")
    old.load_state_dict(dense)
    X = examples(model, CORPUS, "val")[0]
    assert torch.equal(old(X)[0], model(X)[0])


def test_a_conditioned_list_is_refused_by_name():
    with pytest.raises(models.ConfigError, match="condition: the n-gram of gru\\+ngram is not conditioned"):
        build("gru+ngram", n_classes=2)


@pytest.mark.parametrize("context", [1, 3, 6])
def test_the_ngrams_automaton_steps_as_its_windows_do(context, monkeypatch):
    """Generation steps the n-gram through an automaton of its contexts; one too large for that reads its windows
    (sample.NaiveStep): both give forward()'s log-probabilities at every position of every item, bit for bit."""
    from makemore import sample
    from makemore.models import ngram

    model = trained("ngram", block_size=context)
    train, val, _ = CORPUS.split()
    items = val + train[:200]
    X, Y = build_sequences(items, VOCAB)
    full = model(build_windows(items, VOCAB, context)[0])[0]
    for entries in (ngram.AUTOMATON, 0):
        monkeypatch.setattr(ngram, "AUTOMATON", entries)
        model.index()  # the automaton made again, as AUTOMATON allows
        step = sample.make_step(model, len(X), None)
        assert isinstance(step, sample.NaiveStep if entries == 0 else sample.CachedStep)
        with torch.no_grad():
            steps = torch.stack([step(X[:, t]) for t in range(X.shape[1])], dim=1)  # (B, T, V)
        assert torch.equal(steps[Y != IGNORE], full)
