import torch

from makemore.sample import next_token, novelty


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


def test_novelty():
    assert novelty(["ann", "bob", "zed", "ann"], {"ann", "bob"}) == 0.25
