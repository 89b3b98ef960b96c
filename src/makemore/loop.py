"""What the trainers of both backends (PyTorch in train.py, JAX in jax/train.py) share: callbacks and their
events, and the loop around a backend's step, with its log, its evaluations, its checkpoints and its stop,
written once, and the loop's state, saved in a checkpoint and loaded to go on as if it had never stopped."""

from __future__ import annotations

import dataclasses
import math
import time

import torch

from makemore.config import TrainConfig
from makemore.data import IGNORE
from makemore.errors import Diverged
from makemore.ranks import Ranks

# An evaluation's forward pass costs about half a training step per target (measured on 2 CPU cores, whole-word
# models: 0.31 for a GRU, 0.48 for an LSTM, 0.40 for the WaveNet; windows of the lecture's batch of 32: 0.05).
EVAL_COST = 0.5
MAX_EVALS = 50  # a run evaluates at most about this often: each also writes a checkpoint (100 until the fourteenth
# session: 1,000 names with six GRUs evaluated every 3 steps, 83 times, and took 31.5 s; every 5, 27.7 s, val
# 2.1310 against 2.1311)


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop (SIGINT, SIGTERM) and stopped after a step, with a checkpoint of it."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


RECORD = ("step", "train_loss", "val_loss", "weights")  # an evaluation's own keys; the others are what val chose


class Loop:
    """The training loop. Callbacks see every event, fn(trainer, event), with event in
    'step' (after each optimizer step), 'log' (every log_every steps: self.last_log), 'eval' (every
    eval_every steps and at the end: self.last_eval, and self.best, the evaluation with the lowest val loss so
    far), 'checkpoint' (a checkpoint of the state between evaluations: every cfg.checkpoint_every seconds, and when
    the run is interrupted) and 'end' (after the last evaluation).

    With cfg.ema the backend keeps self.averaged, a moving average of the weights; each evaluation also
    evaluates it, and the better of the two is the evaluation's (last_eval["weights"]: "last" or "average") and
    may be the best.

    The run stops early when patience evaluations in a row bring no lower val loss, when time_limit seconds of
    training are spent, or when a callback sets stop; self.stopped says which. The weights of the best
    evaluation are kept in self.best_state (the last ones stay in the model, to go on from). Setting interrupt
    (to why) ends it after the current step with a checkpoint, raising Interrupted; a loss that is not finite
    ends it with Diverged (a ConfigError naming lr), before anything of it is saved.

    A backend sets model (a PyTorch module: the run folder's weights), train_data, val_data and generator, then
    calls settle(), and provides begin() -> the steps to run, train_step(lr) -> the batch's loss (kept on its
    device), mean_losses(losses) -> (mean, mean of log10), split_loss(data) and, if it needs one,
    val_loss(), before_eval_event() and leave_ranks().
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
        self.best: dict | None = None  # the evaluation with the lowest val loss: step, train_loss, val_loss
        self.best_state: dict | None = None  # the model's weights then
        self.bad_evals = 0  # evaluations since the best one
        self.stopped: str | None = None  # "patience", "time_limit" or "callback" when the run ended before its steps
        self.averaged: dict | None = None  # with cfg.ema: the moving average of the weights (a state dict)
        self.pending: list = []  # the batch losses since the last log, on the backend's device: no sync per step
        self.interrupt: str | None = None  # set (by a signal handler) to stop after this step, with a checkpoint
        self.saved_at = 0.0  # time.monotonic() of the last checkpoint
        self.optimizer = None  # the backend's, if it has a state to save

    def settle(self):
        """With the data in place: the training rows that evaluations before the last one read (a fixed sample as
        large as val: a whole-split pass would cost more than the training between two evaluations of a small
        list), and eval_every 0 made the steps between evaluations that cost at most about a tenth of the training
        (and at most MAX_EVALS in a run); config.json and the checkpoint record the number."""
        n, total = len(self.val_data[0]), len(self.train_data[0])
        self.train_sample = self.train_data
        if n < total:  # its own generator: the training's random streams are not touched
            ix = torch.randperm(total, generator=torch.Generator().manual_seed(0))[:n].sort().values
            self.train_sample = tuple(t[ix.to(t.device)] for t in self.train_data)
        if self.cfg.eval_every == 0:
            targets = sum((Y != IGNORE).sum().item() for Y in (self.train_sample[1], self.val_data[1]))
            per_step = self.cfg.batch_size * self.targets_per_row
            every = max(1, math.ceil(10 * EVAL_COST * targets / per_step), math.ceil(self.cfg.steps / MAX_EVALS))
            self.cfg = dataclasses.replace(self.cfg, eval_every=every)
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
        self.stop = False
        self.saved_at = time.monotonic()
        while self.step < steps:
            lr = cfg.lr_at(self.step)
            self.pending.append(self.train_step(lr))
            self.step += 1
            self.emit("step")
            self.elapsed = before + time.perf_counter() - started
            if self.step % log_every == 0 or self.step == steps:
                loss, log10_loss = self.mean_losses(self.pending)
                self.finite(loss)
                self.pending = []
                self.last_log = {"step": self.step, "loss": loss, "log10_loss": log10_loss, "lr": lr,
                                 "time": self.elapsed}
                self.emit("log")
            if cfg.time_limit and self.out_of_time(self.elapsed):
                self.stop, self.stopped = True, "time_limit"
            if self.step % cfg.eval_every == 0 and self.step < steps and not self.stop:
                self.evaluate()
            if self.interrupt or (cfg.checkpoint_every and self.ranks.world == 1 and self.step < steps and not self.stop
                                  and time.monotonic() - self.saved_at >= cfg.checkpoint_every):
                self.checkpoint()  # under torchrun only at evaluations: every rank's random state is gathered there
            if self.stop:
                self.stopped = self.stopped or "callback"
                break
        self.elapsed = before + time.perf_counter() - started
        result = self.final_evaluation()
        self.emit("end")
        return result

    def checkpoint(self):
        """A checkpoint of the state after this step (the 'checkpoint' event), its losses checked first; then, if
        the run was asked to stop, Interrupted."""
        if self.pending:
            self.finite(self.mean_losses(self.pending)[0])
        self.emit("checkpoint")
        self.saved_at = time.monotonic()
        if self.interrupt:
            raise Interrupted(self.interrupt)

    def finite(self, loss: float):
        """A loss that is not finite ends the run: nothing after the last finite state is saved."""
        if not math.isfinite(loss):
            raise Diverged("lr", f"the training diverged: the loss was {loss} by step {self.step:,}; a lower "
                                 "learning rate may train")

    def out_of_time(self, elapsed: float) -> bool:
        return elapsed >= self.cfg.time_limit

    def evaluate(self, final: bool = False) -> dict:
        """Val over the whole split; train over the fixed sample, or over the whole split at the run's last
        evaluation (the end of its steps, or the one after which patience stops it)."""
        val = self.val_loss()
        self.finite(val)
        chosen = self.chosen_on_val()
        raw = None  # the weights, while the better average stands in their place
        if self.averaged is not None:  # the moving average of the weights, evaluated in their place
            raw = self.swap_weights(self.averaged)
            averaged = self.val_loss()
            if averaged < val:
                val, chosen = averaged, self.chosen_on_val()
            else:
                self.swap_weights(raw)
                raw = None
        worse = self.best is not None and not val < self.best["val_loss"]
        final = final or bool(worse and self.cfg.patience and self.bad_evals + 1 >= self.cfg.patience)
        train = self.split_loss(self.train_data if final else self.train_sample)
        self.last_eval = {"step": self.step, "train_loss": train, "val_loss": val, **chosen}
        if self.averaged is not None:
            self.last_eval["weights"] = "last" if raw is None else "average"
        self.before_eval_event()
        self.track_best()
        if raw is not None:
            self.swap_weights(raw)
        self.emit("eval")
        self.saved_at = time.monotonic()
        return self.last_eval

    def track_best(self):
        if self.best is None or self.last_eval["val_loss"] < self.best["val_loss"]:  # NaN is never the best
            self.best = dict(self.last_eval)
            self.best_state = clone_state(self.model)
            self.bad_evals = 0
            return
        self.bad_evals += 1
        if self.cfg.patience and self.bad_evals >= self.cfg.patience:
            self.stop, self.stopped = True, "patience"

    def val_loss(self) -> float:
        """The loss over the whole val split (a backend whose model makes a choice on val makes it here)."""
        return self.split_loss(self.val_data)

    def chosen_on_val(self) -> dict:
        """What val_loss() chose, for the evaluation's record (the summary's, when it is the best): {} if nothing."""
        return {}

    def before_eval_event(self):
        """What must be current before the 'eval' callbacks (a checkpoint among them) run."""

    def leave_ranks(self):
        """At the run's end, out of the process group the backend joined, if it joined one (torchrun's)."""

    def swap_weights(self, state: dict) -> dict:
        """Put state's weights in the model; give back those it had (a backend with averaged weights)."""
        raise NotImplementedError

    def final_evaluation(self) -> dict:
        if self.last_eval.get("step") == self.step:  # stopped by patience, or a callback, just after an evaluation
            return self.last_eval
        return self.evaluate(final=True)

    def state_dict(self) -> dict:
        """The loop's state beside the model's last weights: what going on as if it had never stopped needs. The
        optimizer's state, the step, the batches' generator and torch's random state (every rank's under
        torchrun), the training time so far, the best evaluation (its weights, unless they are the last) and the
        evaluations since, the moving average of the weights, why it stopped, and the losses since the last log."""
        best = None
        if self.best is not None:  # the best evaluation's weights; None where they are the last ones (no second copy)
            last = self.best["step"] == self.step and self.best.get("weights") != "average"
            best = dict(self.best, bad_evals=self.bad_evals, model=None if last else self.best_state)
        return {"optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
                "step": self.step, "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                "rank_rng_states": self.rank_rng_states, "elapsed": self.elapsed, "best": best,
                "averaged": self.averaged, "stopped": self.stopped, "pending": [float(x) for x in self.pending]}

    def load_state_dict(self, state: dict):
        """Go on from a state_dict(), the model holding the last weights."""
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        ranks, rank_states = self.ranks, state.get("rank_rng_states")
        if ranks.world > 1 and rank_states is not None and len(rank_states) == ranks.world:
            torch.set_rng_state(rank_states[ranks.rank])  # each rank's dropout goes on where it stopped
        else:
            torch.set_rng_state(state["torch_rng"])
            if ranks.world > 1:
                torch.manual_seed(self.cfg.seed + ranks.rank + state["step"])  # another number of ranks than before
        self.step, self.elapsed = state["step"], state["elapsed"]
        best = state.get("best")
        if best is not None:  # which evaluation is best goes on as if the run had never stopped
            self.best = {k: v for k, v in best.items() if k not in ("bad_evals", "model")}
            self.best_state = best["model"] if best["model"] is not None else clone_state(self.model)
            self.bad_evals = best["bad_evals"]
        self.averaged = state.get("averaged")
        self.pending = [torch.tensor(x, device=self.device) for x in state.get("pending", [])]


def clone_state(model) -> dict:
    """A copy of the model's state dict, detached from it: the one way a state is kept aside."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
