"""The results table (issue "quality"): every model on names and on spanish-places, each with the same budget
on a data set: the same number of epochs (passes over the training split's targets, one target per character
and one per end), so each model sees the same characters.

    MAKEMORE_DATA=../shared/data python benchmarks/results.py [--epochs 20] [--models gru,transformer]
        [--data names,spanish-places] [--device cpu]

On names an epoch is 182,625 targets: 5,707 batches of 32 windows for the window models (mlp, hierarchical),
or about 400 batches of 64 whole words for the sequence models. Each model keeps its own recipe (optimizer,
learning rate, batch); the steps follow from the epochs. The bigram is counted in one pass. Per model and data
set: params, train / val / test loss over the whole splits, training time, and the novelty rate of 1,000
samples (the share not in the data set). Test is computed once per model, at the end, and chooses nothing.
Prints each row as it is done, then the whole table in markdown.
"""

import argparse
import math
import time

import torch

from makemore import models
from makemore.data import Corpus
from makemore.sample import default_max_len, generate, novelty
from makemore.train import TrainConfig, evaluate, examples, make_trainer

LECTURE = dict(optimizer="sgd", lr=0.1, schedule="step", batch_size=32)  # the lecture's SGD, 0.1 then 0.01
ADAMW = dict(optimizer="adamw", lr=3e-3, weight_decay=0.1, schedule="cosine", batch_size=64)

RECIPES = {  # model -> (options, training)
    "bigram": ({}, {}),
    "mlp": (dict(block_size=3, n_embd=10, n_hidden=200), LECTURE),  # part 3's MLP, 12,097 params
    "hierarchical": ({}, LECTURE),  # part 5's model, 76,579 params
    "conv": ({}, dict(ADAMW, weight_decay=0.0)),  # the same tree as dilated convolutions over whole words
    "wavenet": (dict(dropout=0.1), dict(ADAMW, lr=8e-3, weight_decay=0.05, batch_size=128)),  # --preset wavenet
    "rnn": (dict(n_hidden=128, dropout=0.1), ADAMW),
    "gru": (dict(n_hidden=128, dropout=0.1), ADAMW),
    "lstm": (dict(n_hidden=128, dropout=0.1), ADAMW),
    "transformer": (dict(n_layers=4, n_head=4, n_embd=64, dropout=0.2), ADAMW),
}


def run(name, corpus, epochs, device):
    options, recipe = RECIPES[name]
    start = time.perf_counter()
    trainer = make_trainer(corpus, name, options, TrainConfig(**recipe, steps=1, device=device))
    targets = (trainer.train_data[1] != -1).sum().item()  # one epoch's targets
    per_step = trainer.cfg.batch_size * trainer.targets_per_row
    trainer.cfg.steps = math.ceil(epochs * targets / per_step)
    trainer.cfg.eval_every = trainer.cfg.steps  # one whole-split evaluation, at the end
    trainer.cfg.log_every = 10**9
    result = trainer.run()
    seconds = time.perf_counter() - start
    test = evaluate(trainer.model, tuple(t.to(trainer.device) for t in examples(trainer.model, corpus, "test")))
    generator = torch.Generator(device=trainer.device).manual_seed(0)
    samples = generate(trainer.model, corpus.vocab, 1000, max_len=default_max_len(corpus.items), generator=generator)
    return dict(model=name, params=models.num_params(trainer.model), steps=trainer.step, train=result["train_loss"],
                val=result["val_loss"], test=test, time=seconds, novelty=novelty(samples, corpus.items_of(None)))


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
    args = parser.parse_args()
    names, datasets = args.models.split(","), args.data.split(",")
    print(f"{args.epochs:g} epochs per model and data set, the lecture's split, on {args.device} "
          f"({torch.get_num_threads()} threads), {time.strftime('%Y-%m-%d')}", flush=True)
    rows = {}
    for data in datasets:
        corpus = Corpus.load(data)
        for name in names:
            r = rows[data, name] = run(name, corpus, args.epochs, args.device)
            print(f"{data} {name}: {r['steps']:,} steps, " + ", ".join(f"{c} {v}" for c, v in zip(COLUMNS, cells(r))),
                  flush=True)
    print("\n| model | " + " | ".join(f"{d} {c}" for d in datasets for c in COLUMNS) + " |")
    print("|---|" + "---:|" * (len(COLUMNS) * len(datasets)))
    for name in names:
        print(f"| {LABELS.get(name, name)} | " + " | ".join(v for d in datasets for v in cells(rows[d, name])) + " |")
    for data in datasets:
        best = min(names, key=lambda n: rows[data, n]["val"])
        print(f"best val on {data}: {best} {rows[data, best]['val']:.4f}")


if __name__ == "__main__":
    main()
