"""The run folder: the names of its files, its writer while a run trains, reading its files back, and choosing
the folder of a new run."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None

from makemore import checkpoint, models
from makemore.data import Corpus
from makemore.errors import ConfigError, UserError
from makemore.files import truncate_jsonl, write_json, write_jsonl
from makemore.loop import RECORD

CHECKPOINT = "model.pt"  # the model and everything to go on (checkpoint.py)
CONFIG = "config.json"  # what was asked for: the data, the model's and the training's settings
METRICS = "metrics.jsonl"  # a line per log and per evaluation
SUMMARY = "summary.json"  # the run at a glance: its kept model's losses, why it stopped, its time
RECIPE = "recipe.json"  # an ensemble recipe's members, until they are mixed
PLOT = "loss.png"
LOCK = ".training"  # held by the process that trains the run (FolderLock)
RUN_FILES = (CHECKPOINT, CONFIG, METRICS, SUMMARY, RECIPE)


class FolderLock:
    """The run folder's lock while a process trains it: flock on RUN/.training, which holds that process's pid.
    A second training of the same folder (a resume from another terminal, or from the workspace's page) is
    refused with a line, instead of two processes overwriting one checkpoint. The system lets go of it when the
    process ends, however it ends (kill -9 included): a lock file left behind holds nothing."""

    def __init__(self, folder: Path):
        self.folder, self.file = Path(folder), None

    def acquire(self):
        if fcntl is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        file = open(self.folder / LOCK, "a+")
        for _ in range(3):  # training_pid() holds a shared lock for an instant: a status probe, not a training
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.05)
            except OSError:  # a file system without locks (some NFS): train unlocked
                file.close()
                return
        else:
            file.seek(0)
            pid = file.read().strip()
            file.close()
            raise UserError(f"{self.folder}: process {pid or '?'} is training this run; wait for it to end, or stop "
                            "it, before training it again")
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        self.file = file

    def release(self):
        if self.file is not None:
            self.file.close()  # closing lets go of the lock
            self.file = None


def training_pid(folder: Path) -> int | None:
    """The pid of the process training the run folder now, if one is (None where nothing holds its lock)."""
    if fcntl is None or not (Path(folder) / LOCK).exists():
        return None
    try:
        with open(Path(folder) / LOCK) as file:
            try:
                fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # held
                return int(file.read().strip() or 0) or None
            return None
    except (OSError, ValueError):
        return None


class RunWriter:
    """A trainer callback that keeps the run folder: config.json at the start, a metrics.jsonl line per log and
    eval, the checkpoint at every eval and 'checkpoint' event, summary.json at every eval and at the end, and
    loss.png at the end and at most every PLOT_EVERY_S seconds before (with plot; else none), each written
    atomically."""

    PLOT_EVERY_S = 30.0

    def __init__(self, folder: Path, data: str, model_name: str, corpus: Corpus, plot: bool = True, note=None):
        self.folder, self.data, self.model_name, self.corpus = Path(folder), data, model_name, corpus
        self.note = note
        self.plot = plot
        self.metrics: list[dict] = []
        self.saved_step = None
        self.plotted = time.monotonic()
        self.test_loss = None  # the kept model's, once the run has ended

    def start(self, trainer):
        """A new run: config.json and an empty metrics.jsonl. A resumed run keeps the metrics up to its
        checkpoint and drops those written after it, which the resumed run writes again."""
        if trainer.step:
            self.metrics = truncate_jsonl(self.folder / METRICS, trainer.step)
            self.saved_step = trainer.step
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(self.folder / CONFIG, {"data": self.data, "model": self.model_name,
                                          "model_config": dataclasses.asdict(trainer.model.config),
                                          "train": dataclasses.asdict(trainer.cfg),
                                          **({"auto": self.note} if self.note else {})})
        write_jsonl(self.folder / METRICS, [])

    def __call__(self, trainer, event: str):
        if event in ("log", "eval"):
            self.metrics.append(trainer.last_log if event == "log" else trainer.last_eval)
            write_jsonl(self.folder / METRICS, self.metrics)  # whole, atomically: a full disk leaves the last one
        if event in ("eval", "checkpoint"):
            self.save(trainer)
        if event == "eval":
            self.write_summary(trainer)
        if self.plot and (event == "end" or event == "eval" and time.monotonic() - self.plotted > self.PLOT_EVERY_S):
            from makemore.plots import loss_curve

            loss_curve(self.metrics, self.folder / PLOT, title=f"{self.model_name} on {self.data}")
            self.plotted = time.monotonic()
        if event == "end":
            self.write_summary(trainer)  # with why it stopped

    def save(self, trainer):
        contents = checkpoint.state(self.model_name, trainer.model, self.corpus, trainer.cfg, trainer.state_dict())
        checkpoint.save(self.folder / CHECKPOINT, contents)
        self.saved_step = trainer.step

    def write_summary(self, trainer) -> dict | None:
        """The run at a glance: the best evaluation's losses (those of the weights sample and eval read), the last
        one's, and the kept model's test loss once the run has ended; None before its first evaluation."""
        best, last = trainer.best or trainer.last_eval, trainer.last_eval
        if not last:
            return None
        tokens = trainer.step * trainer.cfg.batch_size * trainer.targets_per_row
        summary = {
            "model": self.model_name,
            "params": models.num_params(trainer.model),
            "step": trainer.step,
            "train_loss": best["train_loss"],
            "val_loss": best["val_loss"],
            **({"test_loss": self.test_loss} if self.test_loss is not None else {}),
            "best_step": best["step"],
            **{k: v for k, v in best.items() if k not in RECORD},  # what val chose (a mixture's share...)
            "last_train_loss": last["train_loss"],
            "last_val_loss": last["val_loss"],
            "stopped": trainer.stopped,
            **({"best_weights": best.get("weights", "last")} if trainer.cfg.ema else {}),
            "time_s": round(trainer.elapsed, 3),
            "tokens_per_s": round(tokens / trainer.elapsed, 1) if trainer.elapsed > 0 else None,
        }
        write_json(self.folder / SUMMARY, summary)
        return summary


def read_run_files(folder: Path):
    """(config, summary, metrics) of a run folder, or a one-line error."""
    try:
        config = json.loads((folder / CONFIG).read_text())
        summary = json.loads((folder / SUMMARY).read_text())
        metrics = [json.loads(line) for line in (folder / METRICS).read_text().splitlines()]
    except FileNotFoundError as e:
        raise UserError(f"{folder}: not a run folder (no {Path(e.filename).name})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{folder}: a damaged run file ({getattr(e, 'msg', None) or e.reason})") from None
    except OSError as e:
        raise UserError(f"{folder}: cannot read its files ({e.strerror})") from None
    return config, summary, metrics


def new_run_folder(out, data) -> Path:
    """The folder a new run is written to: out, or runs/<data> (numbered if taken); never one that holds any of
    a run's files, complete or not (a run killed before its first checkpoint leaves config.json)."""
    if not data:
        raise ConfigError("data", "no data given: a registered data set (names, spanish-places) or a text file")
    out = Path(out) if out is not None else default_run_folder(data)
    if out.exists() and not out.is_dir():
        raise ConfigError("out", f"{out} exists and is not a folder")
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found:
        complete = CHECKPOINT in found or RECIPE in found
        raise ConfigError("out", f"{out} already holds a run ({', '.join(found)}); choose another folder"
                                 + (" or resume it" if complete else " or delete it") + " (nothing was overwritten)")
    return out


def default_run_folder(data) -> Path:
    stem = "+".join(Path(d).stem for d in data) or "run"
    folder, k = Path("runs") / stem, 1
    while folder.exists():
        k += 1
        folder = Path("runs") / f"{stem}-{k}"
    return folder
