"""What the trainers of both backends (PyTorch in train.py, JAX in jax/train.py) share: callbacks and their
events, and the loop around a backend's step, with its log, its evaluations and its stop, written once."""

from __future__ import annotations

import time
from dataclasses import dataclass

from makemore.config import TrainConfig


@dataclass(frozen=True)
class Ranks:
    """This process among torchrun's: rank 0 of 1 when it runs alone."""

    rank: int = 0
    world: int = 1

    @property
    def lead(self) -> bool:
        return self.rank == 0  # the one that prints and writes the run folder


class Loop:
    """The training loop. Callbacks see every event, fn(trainer, event), with event in
    'step' (after each optimizer step), 'log' (every log_every steps: self.last_log) and 'eval' (every
    eval_every steps and at the end: self.last_eval).

    A backend sets model (a PyTorch module: the run folder's weights), train_data, val_data and generator, and
    provides begin() -> the steps to run, train_step(lr) -> the batch's loss (kept on its device),
    mean_losses(losses) -> (mean, mean of log10), split_loss(data) and, if it needs one, before_eval_event().
    """

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.callbacks = []
        self.last_log: dict = {}
        self.last_eval: dict = {}
        self.stop = False  # a callback sets it to end the run after the current step (on every rank, under torchrun)
        self.rank_rng_states = None  # under torchrun: every rank's torch RNG state at the last evaluation
        self.ranks = Ranks()  # alone, unless the backend joins torchrun's processes
        self.step = 0
        self.elapsed = 0.0  # seconds of training, summed over resumed sessions

    @property
    def total_steps(self) -> int:
        return self.cfg.steps

    def add_callback(self, fn):
        self.callbacks.append(fn)

    def emit(self, event: str):
        for fn in self.callbacks:
            fn(self, event)

    def run(self) -> dict:
        cfg = self.cfg
        started, before = time.perf_counter(), self.elapsed
        steps = self.begin()
        log_every = max(1, min(cfg.log_every, steps))
        losses = []  # the batch losses since the last log, on the backend's device: no sync per step
        while self.step < steps:
            lr = cfg.lr_at(self.step)
            losses.append(self.train_step(lr))
            self.step += 1
            self.emit("step")
            if self.step % log_every == 0 or self.step == steps:
                self.elapsed = before + time.perf_counter() - started
                loss, log10_loss = self.mean_losses(losses)
                losses = []
                self.last_log = {"step": self.step, "loss": loss, "log10_loss": log10_loss, "lr": lr,
                                 "time": self.elapsed}
                self.emit("log")
            if self.step % cfg.eval_every == 0 and self.step < steps:
                self.evaluate()
            if self.stop:
                break
        self.elapsed = before + time.perf_counter() - started
        return self.final_evaluation()

    def evaluate(self) -> dict:
        self.last_eval = {
            "step": self.step,
            "train_loss": self.split_loss(self.train_data),
            "val_loss": self.split_loss(self.val_data),
        }
        self.before_eval_event()
        self.emit("eval")
        return self.last_eval

    def before_eval_event(self):
        """What must be current before the 'eval' callbacks (a checkpoint among them) run."""

    def final_evaluation(self) -> dict:
        if self.last_eval.get("step") == self.step:  # stopped by a callback just after an evaluation
            return self.last_eval
        return self.evaluate()
