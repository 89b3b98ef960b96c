"""The anchor of the speed figures: the lecture's own loop (lecture_loop.py), timed, and its trained model in
the library's form."""

import time

import torch

from makemore import models
from makemore.data import lecture_split

import lecture_loop


def time_lecture_loop(words, steps=200_000):
    """The lecture's notebook from the word list to the val loss: (seconds, val loss, model, itos)."""
    start = time.perf_counter()
    chars = sorted(set("".join(words)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0
    train, val, _ = lecture_split(words)
    Xtr, Ytr = lecture_loop.build_dataset(train, stoi)
    Xval, Yval = lecture_loop.build_dataset(val, stoi)
    model = lecture_loop.lecture_model(len(stoi))
    lecture_loop.lecture_train(model, Xtr, Ytr, steps)
    val_loss = lecture_loop.split_loss(model, Xval, Yval)
    return time.perf_counter() - start, val_loss, model, {i: s for s, i in stoi.items()}


def library_tree(lecture_model, vocab_size):
    """The lecture's trained model as the library's `hierarchical`: the same weights and running statistics."""
    tree = models.build("hierarchical", models.make_config("hierarchical", vocab_size=vocab_size))
    with torch.no_grad():
        for ours, theirs in zip(tree.parameters(), lecture_model.parameters()):
            ours.copy_(theirs)
        norms = [m for m in tree.modules() if hasattr(m, "running_var")]
        for ours, layer in zip(norms, [layer for layer in lecture_model.layers if hasattr(layer, "running_var")]):
            ours.running_mean.copy_(layer.running_mean.reshape(-1))
            ours.running_var.copy_(layer.running_var.reshape(-1))
    return tree.eval()


def names_per_second(fn, n, sync=lambda: None):
    """fn(n) -> a list of names; names made per second."""
    sync()
    start = time.perf_counter()
    out = fn(n)
    sync()
    return len(out) / (time.perf_counter() - start)
