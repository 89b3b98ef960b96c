"""One rank of test_distributed's torchrun job (torchrun --nproc-per-node 2 tests/ddp_ranks.py FOLDER ARGS...):
the library's windowed run, a wavenet run, that run killed after its step-20 checkpoint and resumed, then the
command line's training with ARGS (main(), as `python -m makemore` runs it), which leaves the process group as
`makemore train` does. Rank 0 writes FOLDER/result.json for the test to compare with one process."""

import json
import os
import sys
from pathlib import Path

import torch

from makemore.cli import main
from makemore.config import TrainConfig
from makemore.run import load_run
from makemore.trainers import make_trainer, resume_trainer

from conftest import CORPUS, train_into

# windows (one target per row) with a cosine schedule: the global batch of 32, split 16 + 16 under DDP
WINDOWS = "mlp", dict(block_size=3, n_embd=6, n_hidden=32)
WINDOWS_CFG = TrainConfig(steps=60, batch_size=32, eval_every=20, log_every=20, device="cpu", optimizer="adamw",
                          lr=0.01, schedule="cosine")


def ranks_job(folder: Path, cli_args: list[str]):
    rank = int(os.environ["RANK"])
    windows = train_into(folder / "windows", make_trainer(CORPUS, *WINDOWS, WINDOWS_CFG), WINDOWS[0]).last_eval

    name, options = "wavenet", dict(block_size=16, n_embd=8, n_skip=16, dropout=0.2)  # dropout: per-rank RNG resumes
    cfg = TrainConfig(steps=30, batch_size=16, eval_every=10, log_every=5, device="cpu", optimizer="adamw", lr=0.01)
    whole = train_into(folder / "whole", make_trainer(CORPUS, name, options, cfg), name).last_eval
    assert train_into(folder / "killed", make_trainer(CORPUS, name, options, cfg), name, kill_at=25) is None
    torch.distributed.barrier()  # rank 0's checkpoint is on disk
    torch.manual_seed(1234 + rank)  # a resumed process starts with other random state: the checkpoint restores it
    resumed = train_into(folder / "killed", resume_trainer(load_run(folder / "killed")), name).last_eval

    # the command line, its trainer alive as main() returns: the process group is left all the same (a barrier
    # first: rank 1 tearing its group down alone aborted once in CI), and gloo's threads are gone with it (gloo
    # threads still running as a process exited aborted it in CI, and a group left to the wrapper's reducer hung
    # rank 1 there)
    assert main(["train", *cli_args]) == 0
    threads = [Path(f"/proc/self/task/{task}/comm").read_text().strip() for task in os.listdir("/proc/self/task")]
    assert not [t for t in threads if "gloo" in t], f"rank {rank}: gloo's threads outlived the run: {threads}"
    if rank == 0:
        (folder / "result.json").write_text(json.dumps({"whole": whole, "resumed": resumed, "windows": windows}))


if __name__ == "__main__":
    ranks_job(Path(sys.argv[1]), sys.argv[2:])
