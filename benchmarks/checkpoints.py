"""Issue "reliability": what the checkpoints written by time (every --checkpoint-every seconds, beside the
evaluations') cost a run. The default recipe on names, timing every checkpoint the run folder's writer saves.

    MAKEMORE_DATA=../shared/data python benchmarks/checkpoints.py [--every 60] [--steps 0]

Prints the checkpoints by time and by evaluation, the seconds each kind took, and the time ones' share of the
training time (the issue's bound: 2%).
"""

import argparse
import tempfile
import time
from pathlib import Path

import makemore
from makemore import runfolder


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=float, default=60.0, help="seconds between checkpoints by time")
    parser.add_argument("--steps", type=int, default=0, help="steps (0: the default recipe's)")
    args = parser.parse_args()
    spent = {"checkpoint": [], "eval": []}
    save = runfolder.RunWriter.save

    def timed(self, trainer):
        start = time.perf_counter()
        save(self, trainer)
        spent[self.event].append(time.perf_counter() - start)

    call = runfolder.RunWriter.__call__

    def called(self, trainer, event):
        self.event = event
        call(self, trainer, event)

    runfolder.RunWriter.save, runfolder.RunWriter.__call__ = timed, called
    settings = dict(checkpoint_every=args.every, **({"steps": args.steps} if args.steps else {}))
    with tempfile.TemporaryDirectory() as tmp:
        run = makemore.train("names", out=Path(tmp) / "run", verbose=False, device="cpu", **settings)
        size = (Path(tmp) / "run" / "model.pt").stat().st_size
    trained = run.summary["time_s"]
    by_time, by_eval = spent["checkpoint"], spent["eval"]
    print(f"default recipe on names, {run.summary['step']:,} steps, {trained:.1f} s of training; val "
          f"{run.summary['val_loss']:.4f}; a checkpoint is {size / 1e6:.1f} MB")
    print(f"checkpoints by time (every {args.every:g} s): {len(by_time)}, {sum(by_time):.2f} s in all "
          f"({1000 * sum(by_time) / max(len(by_time), 1):.0f} ms each): {100 * sum(by_time) / trained:.2f}% of training")
    print(f"checkpoints at evaluations: {len(by_eval)}, {sum(by_eval):.2f} s in all: "
          f"{100 * sum(by_eval) / trained:.2f}% of training")


if __name__ == "__main__":
    main()
