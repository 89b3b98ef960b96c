"""The lecture's loop beside the convolutional models, in one run on one machine.

    MAKEMORE_DATA=../shared/data python benchmarks/conv_wavenet.py [--quick]

1. Time to val <= 1.9937 on names (the lecture's split, per-position targets, val over the whole split):
   the lecture's loop (hand layers, batch 32, SGD, 200k steps) against a convolutional model trained on
   whole sequences. Times include building the data, not the interpreter's start.
2. Names per second on the trained 76,579-parameter tree: the lecture's one-name-at-a-time loop, naive
   batched generation and cached batched generation; then the cached/naive ratio at receptive fields 8, 16
   and 32.

--quick shortens the lecture's loop to 20k steps (its time is then scaled up, and said so) for a smoke run.
"""

import argparse
import time

import torch

from makemore import models
from makemore.config import TrainConfig
from makemore.data import Corpus
from makemore.sample import generate
from makemore.train import evaluate
from makemore.trainers import make_trainer

import lecture_loop
from anchor import library_tree, names_per_second, time_lecture_loop

TARGET = 1.9937
# The conv recipe: the paper's gated WaveNet seeing the whole word, AdamW, batches of whole words.
CONV_MODEL = "wavenet"
CONV_OPTIONS = dict(dropout=0.1)
CONV_TRAIN = dict(steps=1800, batch_size=128, optimizer="adamw", lr=8e-3, weight_decay=0.05, schedule="cosine")
CHECK_EVERY = 100  # steps between val checks while racing to the target (each costs about 0.1 s)


def time_conv_to_target():
    start = time.perf_counter()
    corpus = Corpus.load("names")
    trainer = make_trainer(corpus, CONV_MODEL, CONV_OPTIONS, TrainConfig(**CONV_TRAIN, eval_every=10**9,
                                                                       log_every=CHECK_EVERY, device="cpu"))
    hit = {}

    def race(t, event):
        if event == "log":
            val = evaluate(t.model, t.val_data)
            if val <= TARGET and not hit:
                hit.update(step=t.step, val=val, time=time.perf_counter() - start)
                t.stop = True

    trainer.add_callback(race)
    trainer.run()
    return hit, trainer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=20_000, help="names per batch for batched generation")
    args = parser.parse_args()
    torch.manual_seed(0)
    corpus = Corpus.load("names")

    lecture_steps = 20_000 if args.quick else 200_000
    t_lecture, val_lecture, lecture_model, itos = time_lecture_loop(corpus.items, lecture_steps)
    if args.quick:
        t_lecture *= 200_000 / lecture_steps
    hit, trainer = time_conv_to_target()
    print(f"== time to val <= {TARGET} on names (CPU, {torch.get_num_threads()} threads)")
    note = " (20k steps timed, scaled x10)" if args.quick else ""
    print(f"lecture loop   hierarchical 76,579 params, batch 32, SGD, 200k steps: {t_lecture:7.1f} s  "
          f"val {val_lecture:.4f}{note}")
    if hit:
        print(f"conv, whole sequences: {CONV_MODEL} {models.num_params(trainer.model):,} params, "
              f"RF {trainer.model.receptive_field}, batch {CONV_TRAIN['batch_size']} words, {CONV_TRAIN['optimizer']}: "
              f"{hit['time']:7.1f} s  val {hit['val']:.4f} at step {hit['step']}")
        print(f"speed-up: {t_lecture / hit['time']:.1f}x")
    else:
        print(f"conv model did not reach {TARGET} in {CONV_TRAIN['steps']} steps")

    tree = library_tree(lecture_model, corpus.vocab.size)  # the trained 76,579-parameter tree, in the library's form
    max_len = 2 * corpus.longest

    def batched(model, cached):
        return lambda n: generate(model, corpus.vocab, n, max_len=max_len, cached=cached,
                                  generator=torch.Generator().manual_seed(1))

    print(f"\n== names per second, 76,579-parameter tree (CPU, batches of {args.batch:,})")
    one = names_per_second(lambda n: lecture_loop.lecture_sample(lecture_model, itos, n), 300)
    naive = names_per_second(batched(tree, False), args.batch)
    cached = names_per_second(batched(tree, True), args.batch)
    print(f"lecture, one name at a time: {one:10,.0f} names/s")
    print(f"naive batched:               {naive:10,.0f} names/s  ({naive / one:.0f}x the lecture's)")
    print(f"cached batched:              {cached:10,.0f} names/s  ({cached / one:.0f}x the lecture's, "
          f"{cached / naive:.2f}x naive)")

    print("\n== cached / naive at larger receptive fields (trees of 24/128, 3000 steps of the lecture's recipe)")
    for block_size in (8, 16, 32):
        t = make_trainer(corpus, "hierarchical", dict(block_size=block_size),
                         TrainConfig(steps=3000, eval_every=10**9, device="cpu"))
        t.run()
        model = t.model.eval()
        naive = names_per_second(batched(model, False), args.batch)
        cached = names_per_second(batched(model, True), args.batch)
        print(f"RF {block_size:2}: naive {naive:9,.0f} names/s, cached {cached:9,.0f} names/s, ratio {cached / naive:.2f}")


if __name__ == "__main__":
    main()
