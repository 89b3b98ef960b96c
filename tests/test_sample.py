import pytest
import torch
import torch.nn.functional as F

from makemore.data import IGNORE, build_sequences, build_windows
from makemore.draw import Sampler, draw, novelty
from makemore.sample import Job, Options, generate, generate_jobs, next_token

from conftest import CORPUS, ITEMS, trained


def test_next_token_follows_the_distribution():
    probs = torch.tensor([0.5, 0.0, 0.2, 0.3])
    logits = probs.log().expand(200_000, -1)
    ix = next_token(logits, 1.0, None, torch.Generator().manual_seed(0))[:, 0]
    freq = torch.bincount(ix, minlength=4).float() / len(ix)
    assert freq[1] == 0  # a zero-probability token is never drawn
    torch.testing.assert_close(freq, probs, atol=0.005, rtol=0)


def test_temperature_and_top_k():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]]).expand(50_000, -1)
    g = torch.Generator().manual_seed(1)
    assert (next_token(logits, 1.0, 1, g) == 0).all()  # top-1 is the argmax
    ix = next_token(logits, 1.0, 2, g)[:, 0]
    assert set(ix.tolist()) == {0, 1}
    cold = torch.bincount(next_token(logits, 0.25, None, g)[:, 0], minlength=4)
    warm = torch.bincount(next_token(logits, 4.0, None, g)[:, 0], minlength=4)
    assert cold[0] > warm[0] and cold[3] < warm[3]
    assert (next_token(logits, 1e-300, None, g) == 0).all()  # near 0: the argmax, not inf - inf


def test_novelty():
    assert novelty(["ann", "bob", "zed", "ann"], {"ann", "bob"}) == 0.25


@pytest.mark.parametrize("name", ["hierarchical", "wavenet", "gru", "transformer"])
def test_logprob_of_a_generated_word_equals_its_score_in_one_forward_pass(name):
    """The log-probability summed while generating (prefix, characters, end token) equals the sum of the
    model's per-position log-probabilities of the finished word, from one forward pass over it."""
    torch.manual_seed(0)  # torch.nn layers (the GRU's) initialise from the global RNG
    model = trained(name, steps=100)  # enough to have learnt to end words
    vocab = CORPUS.vocab
    pairs = generate(model, vocab, 64, max_len=12, prefix="ma", temperature=1.5, top_k=6, logprobs=True,
                     generator=torch.Generator().manual_seed(0))
    words = [w for w, _ in pairs if len(w) < 12]  # ended with their end token
    assert words
    if model.windowed:
        X, Y = build_windows(words, vocab, model.config.block_size)
        lp = F.log_softmax(model(X)[0].double(), -1).gather(1, Y[:, None])[:, 0]
        scores = lp.split([len(w) + 1 for w in words])
    else:
        X, Y = build_sequences(words, vocab, max(map(len, words)) + 1)
        lp = F.log_softmax(model(X)[0].double(), -1).gather(2, Y.clamp(min=0)[..., None])[..., 0]
        scores = [row[y != IGNORE] for row, y in zip(lp, Y)]
    expected = {w: s.sum().item() for w, s in zip(words, scores)}
    for word, logprob in pairs:
        if word in expected:
            assert logprob == pytest.approx(expected[word], abs=1e-4), word


def test_draw_keeps_drawing_for_novel_names_and_counts_every_draw():
    model = trained("bigram")
    known = set(ITEMS)
    result = draw(model, CORPUS.vocab, Sampler(40, Options(max_len=12), torch.Generator().manual_seed(0), known,
                                               novel_only=True))
    shown, drawn = result.names, result.drawn
    assert len(shown) == 40 and not any(w in known for w in shown)
    assert result.complete and len(drawn) >= 40 + sum(w in known for w in drawn)  # every name drawn is counted


def test_a_name_that_ends_in_whitespace_is_not_a_name():
    """Lists never end an item with whitespace (read_items strips it): a model that ends a name after a space
    drew something no list holds, and it is drawn again, as a name past max_len is."""
    from makemore.data import Vocab
    from makemore.models.bigram import Bigram, BigramConfig

    vocab = Vocab([" ", "a", "b"])  # ids: boundary 0, " " 1, "a" 2, "b" 3
    model = Bigram(BigramConfig(vocab_size=4, smoothing=0.0))
    for before, after in [(0, 2), (0, 3), (2, 1), (1, 0), (3, 0)]:  # "a " or "b", half and half
        model.counts[before, after] = 1.0
    rows = generate_jobs(model, vocab, [Job(400, Options(max_len=5), torch.Generator().manual_seed(0))], True, False)[0]
    assert {r and r[0] for r in rows} == {None, "b"} and 150 < rows.count(None) < 250
    sampler = Sampler(50, Options(max_len=5), torch.Generator().manual_seed(0))
    drawn = draw(model, vocab, sampler)
    assert drawn.names == ["b"] * 50 and sampler.found == 50 and sampler.tried > sampler.ended >= 50  # "a ": not ended
    assert (drawn.rows, drawn.tried) == (sampler.tried, sampler.ended)  # every row drawn; those that ended
