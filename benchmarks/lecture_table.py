"""The performance log of makemore part 5, retrained with the library, printed beside the lecture's figures.

    MAKEMORE_DATA=../shared/data python benchmarks/lecture_table.py [--steps N] [--rows 1 4]

Every row is the lecture's recipe (torch.manual_seed(42), 200k steps of batch 32, SGD 0.1 -> 0.01 at 150k),
losses over the whole split with BatchNorm in eval mode. Not run in CI: the four rows take about half an hour
on 2 cores.
"""

import argparse
import time

from makemore import models
from makemore.config import TrainConfig
from makemore.data import Corpus
from makemore.trainers import make_trainer

ROWS = [
    # (row, model, options, lecture train, lecture val)
    ("context 3, flat, 200 hidden", "mlp", dict(block_size=3, n_embd=10, n_hidden=200), 2.058, 2.105),
    ("context 8, flat", "mlp", dict(block_size=8, n_embd=10, n_hidden=200), 1.918, 2.027),
    ("hierarchical 22K, BatchNorm fix", "hierarchical", dict(block_size=8, n_embd=10, n_hidden=68), 1.912, 2.022),
    ("hierarchical", "hierarchical", dict(block_size=8, n_embd=24, n_hidden=128), 1.769, 1.993),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--rows", type=int, nargs="+", default=list(range(1, len(ROWS) + 1)), help="1-based rows")
    args = parser.parse_args()

    corpus = Corpus.load("names")
    header = f"{'row':34} {'params':>7}  {'lecture train/val':>17}  {'ours train/val':>15}  {'|diff| max':>10}  {'time':>7}"
    print(header)
    print("-" * len(header))
    for k in args.rows:
        row, name, options, lec_train, lec_val = ROWS[k - 1]
        trainer = make_trainer(corpus, name, options, TrainConfig(steps=args.steps, eval_every=10**9, device="cpu"))
        start = time.perf_counter()
        result = trainer.run()
        elapsed = time.perf_counter() - start
        diff = max(abs(result["train_loss"] - lec_train), abs(result["val_loss"] - lec_val))
        print(f"{row:34} {models.num_params(trainer.model):>7,}  {lec_train:>8.3f} / {lec_val:.3f}  "
              f"{result['train_loss']:.4f} / {result['val_loss']:.4f}  {diff:>10.4f}  {elapsed:>6.0f}s", flush=True)


if __name__ == "__main__":
    main()
