"""The lecture's recipe on names in both backends, in one run: steps/s, and the time to val <= 1.9937.

    MAKEMORE_DATA=../shared/data python benchmarks/jax_vs_torch.py [--steps 200000] [--model hierarchical]

Both start from the same initial weights and draw the same batches (the lecture's torch.randint stream); the
JAX step is jax.jit-compiled (its compile time is counted). Val is measured over the whole split every
--check steps from 75% of the run on (the lecture's loss reaches its target only after the lr decay), and at
the end. Times include building the data, not the interpreter's start.
"""

import argparse
import platform
import time

import torch

from makemore.config import TrainConfig
from makemore.data import Corpus
from makemore.trainers import make_trainer

TARGET = 1.9937


def run(backend, model, steps, check, device):
    start = time.perf_counter()
    corpus = Corpus.load("names")
    cfg = TrainConfig(steps=steps, eval_every=10**12, log_every=check, backend=backend, device=device)
    trainer = make_trainer(corpus, model, {}, cfg)
    hit = {}
    checks = set(range(int(0.75 * steps) // check * check, steps, check)) - {0}

    def race(t, event):  # val only (cheap), at the checks
        if event == "step" and t.step in checks and not hit and t.split_loss(t.val_data) <= TARGET:
            hit.update(step=t.step, time=time.perf_counter() - start)

    trainer.add_callback(race)
    result = trainer.run()
    total = time.perf_counter() - start
    if not hit and result["val_loss"] <= TARGET:
        hit.update(step=trainer.step, time=total)
    return dict(backend=backend, steps=trainer.step, train=result["train_loss"], val=result["val_loss"], time=total,
                steps_per_s=trainer.step / trainer.elapsed, hit=hit)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--model", default="hierarchical", choices=("hierarchical", "conv"))
    parser.add_argument("--check", type=int, default=5000)
    parser.add_argument("--device", default="cpu", help="torch's device; JAX uses its default (JAX_PLATFORMS=cpu|cuda)")
    args = parser.parse_args()
    import jax

    print(f"{args.model}, the lecture's recipe for {args.steps:,} steps (batch 32, SGD 0.1 -> 0.01); "
          f"torch {torch.__version__} on {args.device} ({torch.get_num_threads()} threads), jax {jax.__version__} on "
          f"{jax.devices()[0].platform}; {platform.processor() or platform.machine()}")
    rows = [run(backend, args.model, args.steps, args.check, args.device) for backend in ("torch", "jax")]
    for r in rows:
        reached = (f"val <= {TARGET} at step {r['hit']['step']:,} after {r['hit']['time']:.1f} s" if r["hit"]
                   else f"val <= {TARGET} not reached")
        print(f"{r['backend']:5}: {r['steps_per_s']:,.0f} steps/s; train {r['train']:.4f} val {r['val']:.4f}; "
              f"{r['time']:.1f} s in all; {reached}")
    torch_row, jax_row = rows
    print(f"jax / torch steps/s: {jax_row['steps_per_s'] / torch_row['steps_per_s']:.2f}x; "
          f"val difference {jax_row['val'] - torch_row['val']:+.4f}")


if __name__ == "__main__":
    main()
