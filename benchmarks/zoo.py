"""Every model on names with the same budget: the same number of epochs (passes over the training split's
targets, one target per character and one per end), so each sees the same characters.

    MAKEMORE_DATA=../shared/data python benchmarks/zoo.py [--epochs 20] [--models gru,transformer] [--device cpu]

An epoch is 182,625 targets: 5,707 batches of 32 windows for the window models (mlp, hierarchical), or
about 400 batches of 64 whole words for the sequence models. Each model keeps its own recipe (optimizer,
learning rate, batch); the steps follow from the epochs. The bigram is counted in one pass. Prints, per model:
params, train / val / test loss over the whole splits, training time, and the novelty rate of 1,000 samples
(the share not in names.txt). Test is computed here once per model, at the end, and chooses nothing.
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
    "wavenet": (dict(dropout=0.1), dict(ADAMW, lr=8e-3, weight_decay=0.05, batch_size=128)),  # configs/wavenet.toml
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=float, default=20)
    parser.add_argument("--models", default=",".join(RECIPES))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    corpus = Corpus.load("names")
    print(f"names: the lecture's split; {args.epochs:g} epochs each on {args.device}, {torch.get_num_threads()} threads")
    header = "| model | params | steps | train | val | test | time | novelty |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    print(header, flush=True)
    rows = []
    for name in args.models.split(","):
        r = run(name, corpus, args.epochs, args.device)
        rows.append(r)
        print(f"| {r['model']} | {r['params']:,} | {r['steps']:,} | {r['train']:.4f} | {r['val']:.4f} | {r['test']:.4f} | "
              f"{r['time']:.1f} s | {100 * r['novelty']:.1f}% |", flush=True)
    best = min(rows, key=lambda r: r["val"])
    print(f"best val: {best['model']} {best['val']:.4f} (the lecture's model: 1.9937)")


if __name__ == "__main__":
    main()
