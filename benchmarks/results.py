"""The results table (issue "quality"): every model on names and on spanish-places, each with the same budget
on a data set: the same number of epochs (passes over the training split's targets, one target per character
and one per end), so each model sees the same characters.

    MAKEMORE_DATA=../shared/data python benchmarks/results.py [--epochs 20] [--models gru,transformer]
        [--data names,spanish-places] [--device cpu] [--ensemble gru,lstm,transformer]

On names an epoch is 182,625 targets: 5,707 batches of 32 windows for the window models (mlp, hierarchical),
or about 400 batches of 64 whole words for the sequence models. Each model keeps its own recipe (optimizer,
learning rate, batch); the steps follow from the epochs. The bigram and the ngram are counted in one pass. Per model and data
set: params, train / val / test loss over the whole splits, training time, and the novelty rate of 1,000
samples (the share not in the data set). Test is computed once per model, at the end, and chooses nothing.
Three rows are not families: gru-ema, the GRU with a moving average of its weights (decay 0.999) evaluated
beside them; the ensemble of the --ensemble rows' runs (the mixture of their distributions; its time is its
members'); and a GRU 384 wide distilled from that ensemble (--teacher, share 0.5; its time is its own
training's). Prints each row as it is done, then the whole table in markdown.
"""

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

import makemore
from makemore import models
from makemore.data import Corpus

LECTURE = dict(optimizer="sgd", lr=0.1, schedule="step", batch_size=32)  # the lecture's SGD, 0.1 then 0.01
ADAMW = dict(optimizer="adamw", lr=3e-3, weight_decay=0.1, schedule="cosine", batch_size=64)

RECIPES = {  # row -> (model, options, training)
    "bigram": ("bigram", {}, {}),
    "ngram": ("ngram", dict(block_size=5, discount=0.9), {}),  # Kneser-Ney, counted like the bigram
    "mlp": ("mlp", dict(block_size=3, n_embd=10, n_hidden=200), LECTURE),  # part 3's MLP, 12,097 params
    "hierarchical": ("hierarchical", {}, LECTURE),  # part 5's model, 76,579 params
    "conv": ("conv", {}, dict(ADAMW, weight_decay=0.0)),  # the same tree as dilated convolutions over whole words
    "wavenet": ("wavenet", dict(dropout=0.1), dict(ADAMW, lr=8e-3, weight_decay=0.05, batch_size=128)),
    "rnn": ("rnn", dict(n_hidden=128, dropout=0.1), ADAMW),
    "gru": ("gru", dict(n_hidden=128, dropout=0.1), ADAMW),
    "gru-ema": ("gru", dict(n_hidden=128, dropout=0.1), dict(ADAMW, ema=0.999)),
    "lstm": ("lstm", dict(n_hidden=128, dropout=0.1), ADAMW),
    "transformer": ("transformer", dict(n_layers=4, n_head=4, n_embd=64, dropout=0.2), ADAMW),
}
STUDENT = ("gru", dict(n_hidden=384, dropout=0.3), dict(ADAMW, lr=4e-3, distill=0.5))  # the student preset's model


def epoch_steps(name, corpus, batch_size) -> float:
    """Steps of an epoch: a window model's rows are the training targets, a sequence model's the words."""
    train = corpus.split()[0]
    rows = sum(len(w) + 1 for w in train) if models.lookup(name)[1].windowed else len(train)
    return rows / batch_size


def run(name, data, corpus, epochs, device, folder, recipe=None, **extra):
    model, options, recipe = recipe or RECIPES[name]
    steps = math.ceil(epochs * epoch_steps(model, corpus, recipe.get("batch_size", 32)))
    start = time.perf_counter()
    run = makemore.train(data, model=model, **options, **recipe, steps=steps, eval_every=steps, log_every=10**9,
                         device=device, out=Path(folder) / f"{data}-{name}", verbose=False, **extra)  # one evaluation
    return row(name, run, time.perf_counter() - start)


def row(name, run, seconds):
    samples = run.generate(1000, seed=0)
    return dict(model=name, params=models.num_params(run.model), steps=run.state["step"], train=run.evaluate("train"),
                val=run.evaluate("val"), test=run.evaluate("test"), time=seconds, folder=run.folder,
                novelty=sum(s not in run.known() for s in samples) / len(samples))


LABELS = {"hierarchical": "hierarchical (lecture)", "conv": "conv WaveNet", "wavenet": "gated WaveNet"}
COLUMNS = ("params", "train", "val", "test", "time", "novelty")


def cells(r):
    return [f"{r['params']:,}", f"{r['train']:.4f}", f"{r['val']:.4f}", f"{r['test']:.4f}", f"{r['time']:.1f} s",
            f"{100 * r['novelty']:.1f}%"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=float, default=20)
    parser.add_argument("--models", default=",".join(RECIPES))
    parser.add_argument("--data", default="names,spanish-places")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ensemble", default="gru,lstm,transformer", help="the rows whose runs make the ensemble "
                        "row ('' for none); each must be among --models")
    args = parser.parse_args()
    names, datasets = args.models.split(","), args.data.split(",")
    members = [m for m in args.ensemble.split(",") if m]
    if any(m not in names for m in members):
        parser.error(f"--ensemble: {args.ensemble} are not all among --models")
    print(f"{args.epochs:g} epochs per model and data set, the lecture's split, on {args.device} "
          f"({torch.get_num_threads()} threads), {time.strftime('%Y-%m-%d')}", flush=True)
    rows = {}
    folder = tempfile.mkdtemp(prefix="makemore-results-")  # the run folders
    for data in datasets:
        corpus = Corpus.load(data)
        for name in names:
            r = rows[data, name] = run(name, data, corpus, args.epochs, args.device, folder)
            print(f"{data} {name}: {r['steps']:,} steps, " + ", ".join(f"{c} {v}" for c, v in zip(COLUMNS, cells(r))),
                  flush=True)
        if members:
            label = "ensemble of " + " + ".join(members)
            start = time.perf_counter()
            mixed = makemore.ensemble([rows[data, m]["folder"] for m in members], out=Path(folder) / f"{data}-ensemble")
            seconds = time.perf_counter() - start + sum(rows[data, m]["time"] for m in members)
            r = rows[data, label] = row(label, mixed, seconds)
            print(f"{data} {label}: " + ", ".join(f"{c} {v}" for c, v in zip(COLUMNS, cells(r))), flush=True)
            student = "gru 384 distilled from it"
            r = rows[data, student] = run(student, data, corpus, args.epochs, args.device, folder, recipe=STUDENT,
                                          teacher=str(mixed.folder))
            print(f"{data} {student}: " + ", ".join(f"{c} {v}" for c, v in zip(COLUMNS, cells(r))), flush=True)
    if members:
        names += ["ensemble of " + " + ".join(members), "gru 384 distilled from it"]
    print("\n| model | " + " | ".join(f"{d} {c}" for d in datasets for c in COLUMNS) + " |")
    print("|---|" + "---:|" * (len(COLUMNS) * len(datasets)))
    for name in names:
        print(f"| {LABELS.get(name, name)} | " + " | ".join(v for d in datasets for v in cells(rows[d, name])) + " |")
    for data in datasets:
        best = min(names, key=lambda n: rows[data, n]["val"])
        print(f"best val on {data}: {best} {rows[data, best]['val']:.4f}")


if __name__ == "__main__":
    main()
