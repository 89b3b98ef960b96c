"""Trainer callbacks beside the run folder's own (run.RunWriter): the progress bar, TensorBoard, and the
update:data ratio. Each is fn(trainer, event) for the events of loop.Loop."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from makemore.errors import ConfigError
from makemore.files import truncate_jsonl


class ProgressBar:
    """A tqdm bar, moved every step (tqdm redraws at most every mininterval), with the logged batch loss and
    steps/s, and a line per evaluation."""

    def __init__(self, trainer):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=trainer.total_steps, initial=trainer.step, unit="step", dynamic_ncols=True,
                        smoothing=0.1, mininterval=0.5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self, keep: bool = True):
        """The bar ends; keep=False clears it (a run that failed ends on its one-line error alone)."""
        self.bar.leave = keep
        self.bar.close()

    def __call__(self, trainer, event: str):
        if event == "step":
            self.bar.update(trainer.step - self.bar.n)
        elif event == "log":
            self.bar.set_postfix(loss=f"{trainer.last_log['loss']:.4f}", lr=f"{trainer.last_log['lr']:.3g}")
        elif event == "eval" and trainer.step < trainer.cfg.steps:
            e = trainer.last_eval
            self.bar.write(f"step {e['step']:>7,}: train {e['train_loss']:.4f}, val {e['val_loss']:.4f}")


def require_tensorboard():
    """TensorBoard's writer class, or a one-line message on how to install it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("tensorboard", "tensorboard is not installed; pip install tensorboard "
                                         "(or makemore[tensorboard])") from None
    return SummaryWriter


class TensorBoard:
    """The logged and evaluated scalars for TensorBoard, in RUN/tensorboard."""

    def __init__(self, folder: Path):
        self.writer = require_tensorboard()(log_dir=str(Path(folder) / "tensorboard"))

    def __call__(self, trainer, event: str):
        if event == "log":
            self.writer.add_scalar("train/batch_loss", trainer.last_log["loss"], trainer.step)
            self.writer.add_scalar("train/lr", trainer.last_log["lr"], trainer.step)
        elif event == "eval":
            self.writer.add_scalar("loss/train", trainer.last_eval["train_loss"], trainer.step)
            self.writer.add_scalar("loss/val", trainer.last_eval["val_loss"], trainer.step)
            self.writer.flush()

    def close(self):
        self.writer.close()


class UpdateRatios:
    """The lecture's update:data ratio: log10(std(update) / std(weight)) of every weight matrix, at every step of
    the first 1,000 and every log_every steps after, into update_ratio.jsonl. The update is the parameter's
    actual change, so it is right for any optimizer."""

    FILE = "update_ratio.jsonl"

    def __init__(self, folder: Path, trainer):
        self.path = Path(folder) / self.FILE
        if trainer.step:
            truncate_jsonl(self.path, trainer.step)
        else:
            self.path.write_text("")
        self.weights = {n: p for n, p in trainer.model.named_parameters() if p.ndim >= 2}
        self.before = None  # the weights after the previous step, when the next step is one to record
        if self.wanted(trainer, trainer.step + 1):
            self.snapshot()

    def snapshot(self):
        self.before = {n: p.detach().clone() for n, p in self.weights.items()}

    def wanted(self, trainer, step: int) -> bool:
        return step <= 1000 or step % trainer.cfg.log_every == 0

    @torch.no_grad()
    def __call__(self, trainer, event: str):
        if event != "step":
            return
        if self.before is not None:
            ratios = {n: ((p - self.before[n]).std() / p.std()).log10().item() for n, p in self.weights.items()}
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": trainer.step, "update_ratio": ratios}) + "\n")
            self.before = None
        if self.wanted(trainer, trainer.step + 1):
            self.snapshot()
