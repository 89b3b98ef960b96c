"""Each hand-written layer equals its torch.nn twin, on outputs and gradients."""

import pytest
import torch
from torch import nn

from makemore import scratch

TOL = dict(atol=1e-6, rtol=1e-6)


def grads_of(out, *tensors):
    torch.manual_seed(1)
    upstream = torch.randn(out.shape)
    return torch.autograd.grad(out, tensors, upstream)


def test_linear_equals_nn_linear():
    ours = scratch.Linear(7, 5)
    twin = nn.Linear(7, 5)
    with torch.no_grad():
        ours.bias.normal_()
        twin.weight.copy_(ours.weight.T)  # ours is (fan_in, fan_out), nn's (fan_out, fan_in)
        twin.bias.copy_(ours.bias)
    x = torch.randn(4, 3, 7, requires_grad=True)
    a, b = ours(x), twin(x)
    torch.testing.assert_close(a, b, **TOL)
    ga = grads_of(a, x, ours.weight, ours.bias)
    gb = grads_of(b, x, twin.weight, twin.bias)
    torch.testing.assert_close(ga[0], gb[0], **TOL)
    torch.testing.assert_close(ga[1], gb[1].T, **TOL)
    torch.testing.assert_close(ga[2], gb[2], **TOL)


def test_linear_init_is_lectures():
    g = torch.Generator().manual_seed(3)
    layer = scratch.Linear(16, 4, bias=False, generator=g)
    expected = torch.randn((16, 4), generator=torch.Generator().manual_seed(3)) / 16**0.5
    assert layer.bias is None
    assert torch.equal(layer.weight, expected)


def test_embedding_equals_nn_embedding():
    ours = scratch.Embedding(11, 4)
    twin = nn.Embedding(11, 4)
    with torch.no_grad():
        twin.weight.copy_(ours.weight)
    idx = torch.randint(0, 11, (5, 8))
    a, b = ours(idx), twin(idx)
    torch.testing.assert_close(a, b, **TOL)
    torch.testing.assert_close(grads_of(a, ours.weight)[0], grads_of(b, twin.weight)[0], **TOL)


def test_embedding_gradient_is_the_same_run_after_run_and_on_any_thread_count():
    """The WaveNet's whole-word batches made indexing's backward add with atomics on several threads: its
    training differed from run to run in the last bits."""
    torch.manual_seed(0)
    emb = scratch.Embedding(27, 48)
    idx = torch.randint(0, 27, (256, 16))  # 196,608 gradient values: past the size that went to atomics
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = grads_of(emb(idx), emb.weight)[0]
        lecture = grads_of(emb.weight[idx], emb.weight)[0]  # the lecture's indexing, on one thread: no atomics
        torch.set_num_threads(max(threads, 4))
        runs = [grads_of(emb(idx), emb.weight)[0] for _ in range(5)]
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(serial, g) for g in runs)
    torch.testing.assert_close(serial, lecture)


def test_tanh_equals_nn_tanh():
    x = torch.randn(6, 5, requires_grad=True)
    a, b = scratch.Tanh()(x), nn.Tanh()(x)
    torch.testing.assert_close(a, b, **TOL)
    torch.testing.assert_close(grads_of(a, x)[0], grads_of(b, x)[0], **TOL)


def bn_pair(dim, unbiased):
    ours = scratch.BatchNorm1d(dim, unbiased=unbiased)
    twin = nn.BatchNorm1d(dim)
    with torch.no_grad():
        ours.gamma.uniform_(0.5, 1.5)
        ours.beta.normal_()
        twin.weight.copy_(ours.gamma)
        twin.bias.copy_(ours.beta)
    return ours, twin


@pytest.mark.parametrize("shape", [(32, 6), (8, 4, 6)], ids=["2d", "3d"])
def test_batchnorm_equals_nn_batchnorm(shape):
    """With the biased variance, ours is torch's BatchNorm1d; 3D input is compared on the transposed tensor."""
    ours, twin = bn_pair(shape[-1], unbiased=False)
    x = (torch.randn(*shape) * 3 + 1).requires_grad_()
    to_nn = (lambda t: t.transpose(1, 2)) if len(shape) == 3 else (lambda t: t)
    a = ours(x)
    b = to_nn(twin(to_nn(x)))  # nn.BatchNorm1d wants (B, C, T)
    torch.testing.assert_close(a, b, **TOL)
    ga = grads_of(a, x, ours.gamma, ours.beta)
    gb = grads_of(b, x, twin.weight, twin.bias)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)
    # running statistics (torch updates the running variance with the unbiased one, as the lecture does)
    torch.testing.assert_close(ours.running_mean, twin.running_mean, **TOL)
    torch.testing.assert_close(ours.running_var, twin.running_var, **TOL)
    # eval mode uses the running statistics
    ours.eval(), twin.eval()
    torch.testing.assert_close(ours(x), to_nn(twin(to_nn(x))), **TOL)


@pytest.mark.parametrize("shape", [(32, 6), (8, 4, 6)], ids=["2d", "3d"])
def test_batchnorm_lecture_uses_unbiased_variance(shape):
    """The lecture's deliberate difference: it normalises with the unbiased batch variance (torch.var's default),
    torch.nn with the biased one. The outputs differ exactly by that factor; running statistics agree."""
    ours, twin = bn_pair(shape[-1], unbiased=True)
    x = torch.randn(*shape) * 3 + 1
    to_nn = (lambda t: t.transpose(1, 2)) if len(shape) == 3 else (lambda t: t)
    a, b = ours(x), to_nn(twin(to_nn(x)))
    dims = tuple(range(x.ndim - 1))
    var_b, var_u = x.var(dims, unbiased=False), x.var(dims, unbiased=True)
    rescaled = (b - ours.beta) * torch.sqrt((var_b + 1e-5) / (var_u + 1e-5)) + ours.beta
    torch.testing.assert_close(a, rescaled, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a, b, atol=1e-4)
    torch.testing.assert_close(ours.running_var, twin.running_var, **TOL)


@pytest.mark.parametrize("levels", [1, 2, 3, 4, 5])
def test_flatten_consecutive_any_depth(levels):
    """Trees deeper than 3 levels work (nn-zero-to-hero #23): squeeze only when one group is left."""
    T = 2**levels
    x = torch.randn(3, T, 4, requires_grad=True)
    out = x
    for level in range(levels):
        out = scratch.FlattenConsecutive(2)(out)
        expected_T = T // 2 ** (level + 1)
        assert out.shape == ((3, expected_T, 4 * 2 ** (level + 1)) if expected_T > 1 else (3, 4 * T))
    twin = nn.Flatten()(x)  # the whole window flattened is what the last level sees
    torch.testing.assert_close(out, twin, **TOL)
    torch.testing.assert_close(grads_of(out, x)[0], grads_of(twin, x)[0], **TOL)


def test_flatten_consecutive_keeps_batch_of_one():
    out = scratch.FlattenConsecutive(2)(torch.randn(1, 4, 3))
    assert out.shape == (1, 2, 6)  # the lecture's squeeze(1) rule is about groups, not the batch


def test_sequential_equals_nn_sequential_and_is_a_module():
    layers = [scratch.Embedding(10, 4), scratch.FlattenConsecutive(2), scratch.Linear(8, 6, bias=False),
              scratch.BatchNorm1d(6), scratch.Tanh(), scratch.FlattenConsecutive(2), scratch.Linear(12, 10)]
    ours = scratch.Sequential(layers)
    twin = nn.Sequential(*layers)
    idx = torch.randint(0, 10, (5, 4))
    torch.testing.assert_close(ours(idx), twin(idx), **TOL)
    names = dict(ours.named_parameters())
    assert len(names) == 6 and "layers.3.gamma" in names
    state = ours.state_dict()
    assert "layers.3.running_var" in state  # buffers travel with the state dict and .to(device)
    opt = torch.optim.SGD(ours.parameters(), lr=0.1)
    before = ours.layers[2].weight.detach().clone()
    ours(idx).sum().backward()
    opt.step()
    assert not torch.equal(before, ours.layers[2].weight)
    ours.eval()
    assert not ours.layers[3].training
