"""The workspace behind `makemore serve` with no run: a folder of run folders, lists uploaded into it, and one
training at a time in a process of its own (`makemore train`), the others queued.

A list uploaded as NAME goes to WORKSPACE/NAME/NAME.txt, with job.json (its preset, its item count, how its last
training ended) and train.log (the training's output). The run's files are the ones `makemore train` writes,
so a run of the workspace is a run folder like any other, and a folder of runs trained in a terminal is a
workspace too. Where a run stands is read from its files every time, so a server that restarts finds its runs
as they are: those that did not finish are offered to resume.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from makemore.config import presets
from makemore.data import check_padded, lecture_split, table_note
from makemore.errors import ConfigError, UserError
from makemore.files import write_json
from makemore.lists import read_items
from makemore.runfolder import CHECKPOINT, CONFIG, METRICS, RECIPE, SUMMARY, training_pid

JOB = "job.json"
LOG = "train.log"
MAX_UPLOAD = 8 * 2**20  # bytes of a list sent to the server (english-words' 234,450 words are 2.5 MB)
MAX_ITEMS = 300_000
LOG_EVERY = 20  # steps between the progress a training writes (metrics.jsonl)
# A training yields the CPU to the server: under 20 clients asking for names, generation answers stayed under
# 0.5 s at p99 on 2 cores (benchmarks/serve_load.py --workspace) and the training slowed; when nobody asks, it
# has every core (a training on one of 2 cores took 1.4x as long).
TRAINING_NICE = 10
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")  # a run folder's name: no separator, no "..", no dot first


class NotFound(UserError):
    """No run of that name in the workspace (or a name that could never be one)."""


class Conflict(UserError):
    """The run is not in a state that allows it (cancel a run that does not train, resume a finished one)."""


def clean_name(text: str) -> str:
    """A run's name from a list's name: its stem in lower case, runs of anything but letters and digits made one
    dash; 'list' when nothing is left. 'Shop names (v2).txt' -> 'shop-names-v2'; '../../etc/passwd' -> 'etc-passwd'."""
    stem = Path(text.replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem.strip(".") else stem
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40].strip("-") or "list"


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class Workspace:
    def __init__(self, folder, device: str = "cpu", start: bool = True):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.lock = threading.Condition()
        self.queue: list[str] = []
        self.current: str | None = None  # the run training now
        self.process: subprocess.Popen | None = None
        self.cancelling = False
        self.closing = False  # the server stops: no new training, the current one stopped with a checkpoint
        if start:
            threading.Thread(target=self.loop, name="makemore-trainer", daemon=True).start()

    # ------------------------------------------------------------------------------------------------ names

    def folder_of(self, name: str) -> Path:
        """The run folder of that name: a folder directly in the workspace, whatever the name tries."""
        if not RUN_NAME.fullmatch(name or "") or ".." in name:
            raise NotFound(f"no run named {name!r}")
        folder = self.folder / name
        if folder.resolve().parent != self.folder or not folder.is_dir():
            raise NotFound(f"no run named {name!r}")
        return folder

    def names(self) -> list[str]:
        marks = (CONFIG, CHECKPOINT, RECIPE, JOB)
        return sorted(p.name for p in self.folder.iterdir()
                      if p.is_dir() and RUN_NAME.fullmatch(p.name) and any((p / m).exists() for m in marks))

    # ------------------------------------------------------------------------------------------------ jobs

    def add(self, data: bytes, name: str, preset: str | None = None) -> str:
        """A list uploaded as `name`, checked as `makemore train` checks a file, put in a run folder of its own
        and queued; its run's name, numbered if taken."""
        if preset is not None and preset not in presets():
            raise ConfigError("preset", f"unknown preset {preset!r}; presets: {', '.join(presets())}")
        if len(data) > MAX_UPLOAD:
            raise ConfigError("list", f"{len(data):,} bytes; a list may have at most {MAX_UPLOAD:,}")
        run = clean_name(name)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".upload-", suffix=".txt")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                items = read_items(tmp)
                lecture_split(items, source=tmp)  # too few items for train, val and test: said now, not later
                check_padded([tmp], [items])  # an item far longer than the rest: said now too
            except UserError as e:  # the message names the temporary file: name the upload instead
                raise ConfigError("list", str(e).replace(tmp, f"{run}.txt")) from None
            if len(items) > MAX_ITEMS:
                raise ConfigError("list", f"{len(items):,} items; a list may have at most {MAX_ITEMS:,}")
            with self.lock:
                base, k = run, 1
                while (self.folder / run).exists():
                    k += 1
                    run = f"{base}-{k}"
                (self.folder / run).mkdir()
                os.replace(tmp, self.folder / run / f"{run}.txt")
                write_json(self.folder / run / JOB, {"data": f"{run}.txt", "preset": preset, "items": len(items),
                                                     "ended": None, "error": None,
                                                     "note": table_note(f"{run}.txt", items)})
                self.queue.append(run)
                self.lock.notify_all()
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return run

    def cancel(self, name: str) -> None:
        """A queued run leaves the queue; the training one is stopped as Ctrl-C stops it, with a checkpoint."""
        self.folder_of(name)
        with self.lock:
            if name in self.queue:
                self.queue.remove(name)
                self.set_job(name, ended="cancelled", error=None)
            elif name == self.current and self.process is not None:
                self.cancelling = True
                self.process.send_signal(signal.SIGTERM)
            else:
                raise Conflict(f"{name} is not training or queued")

    def resume(self, name: str) -> None:
        """A run that was cancelled or stopped goes back in the queue: on from its checkpoint, or from the start
        when it has none."""
        status = self.status(name)
        if not status["resumable"]:
            raise Conflict(f"{name} is {status['state']}: nothing to resume")
        with self.lock:
            self.set_job(name, ended=None, error=None)
            self.queue.append(name)
            self.lock.notify_all()

    def set_job(self, name: str, **changes):
        job = self.folder / name / JOB
        if job.exists():
            write_json(job, {**read_json(job), **changes})

    def command(self, name: str) -> list[str]:
        folder = self.folder / name
        base = [sys.executable, "-m", "makemore", "train", "--samples", "0", "--device", self.device]
        if (folder / CHECKPOINT).exists():
            return [*base, "--resume", "."]
        job = read_json(folder / JOB)
        for partial in (CONFIG, METRICS, SUMMARY):  # a run killed before its first checkpoint starts again
            (folder / partial).unlink(missing_ok=True)
        preset = ["--preset", job["preset"]] if job.get("preset") else []
        return [*base, job["data"], "--out", ".", "--log-every", str(LOG_EVERY), *preset]

    def loop(self):
        """The trainer thread: the queue's runs, one at a time, each in a process of its own."""
        while True:
            with self.lock:
                while not self.queue or self.closing:
                    self.lock.wait()
                name = self.queue.pop(0)
                self.current, self.cancelling = name, False
                folder = self.folder / name
                try:
                    with open(folder / LOG, "ab") as log:
                        self.process = subprocess.Popen(self.command(name), cwd=folder, stdout=log,
                                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                    os.setpriority(os.PRIO_PROCESS, self.process.pid, TRAINING_NICE)
                except OSError as e:
                    self.set_job(name, ended="failed", error=f"cannot start the training: {e.strerror}")
                    self.current = None
                    continue
            code = self.process.wait()
            with self.lock:
                self.ended(name, code)
                self.current, self.process = None, None

    def ended(self, name: str, code: int):
        if code == 0:
            self.set_job(name, ended="done", error=None)
        elif self.closing:  # stopped with the server: offered to resume when it starts again
            self.set_job(name, ended=None, error=None)
        elif self.cancelling:
            self.set_job(name, ended="cancelled", error=None)
        elif code == 2:  # the command's one-line error
            lines = (self.folder / name / LOG).read_text(encoding="utf-8", errors="replace").splitlines()
            error = next((line.split(": error: ", 1)[1] for line in reversed(lines) if ": error: " in line),
                         "the training failed; see train.log")
            self.set_job(name, ended="failed", error=error)
        else:
            why = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.Signals._value2member_map_ \
                else f"exit code {code}"
            self.set_job(name, ended="stopped", error=f"the training process ended ({why})")

    # ------------------------------------------------------------------------------------------------ status

    def status(self, name: str, curve: bool = False) -> dict:
        """Where a run stands, from its files: state (queued, training, busy: trained by a process not ours, done,
        cancelled, stopped, failed), its step of steps, seconds so far and left, losses, the auto line; with
        curve, every evaluation's losses."""
        folder = self.folder_of(name)
        job, config, summary = read_json(folder / JOB), read_json(folder / CONFIG), read_json(folder / SUMMARY)
        metrics = []
        if (folder / METRICS).exists():
            for line in (folder / METRICS).read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    metrics.append(json.loads(line))
                except ValueError:
                    pass
        with self.lock:
            training, queued = name == self.current, name in self.queue
            pid = self.process.pid if training and self.process else None
        done = "test_loss" in summary
        elsewhere = None if training else training_pid(folder)  # a terminal's makemore train, say
        if training:
            state = "training"
        elif queued:
            state = "queued"
        elif elsewhere:
            state, pid = "busy", elsewhere
        elif done:
            state = "done"
        else:
            state = job.get("ended") if job.get("ended") in ("cancelled", "failed") else "stopped"
        steps = config.get("train", {}).get("steps")
        step = max((m.get("step", 0) for m in metrics), default=0)
        timed = [m for m in metrics if "time" in m]
        elapsed = timed[-1]["time"] if timed else summary.get("time_s")
        left = None
        if training and steps and timed and timed[-1]["step"]:
            left = round(elapsed / timed[-1]["step"] * (steps - timed[-1]["step"]), 1)
        evals = [{"step": m["step"], "train_loss": m["train_loss"], "val_loss": m["val_loss"]}
                 for m in metrics if "val_loss" in m]
        startable = (folder / CHECKPOINT).exists() or bool(job.get("data"))
        status = {
            "name": name, "state": state, "step": step, "steps": steps,
            "seconds": None if elapsed is None else round(elapsed, 1), "seconds_left": left,
            "train_loss": summary.get("train_loss"), "val_loss": summary.get("val_loss"),
            "test_loss": summary.get("test_loss"), "items": job.get("items"), "preset": job.get("preset"),
            "model": config.get("model") or summary.get("model"), "auto": config.get("auto"),
            "error": job.get("error"), "note": job.get("note"), "pid": pid,
            "can_generate": (folder / CHECKPOINT).exists() and (done or not training),
            "resumable": state in ("cancelled", "stopped") and startable and not done,
        }
        if curve:
            status["curve"] = evals
        return status

    def overview(self) -> dict:
        names = self.names()
        with self.lock:
            queue, current = list(self.queue), self.current
        runs = []
        for name in names:
            try:
                runs.append(self.status(name))
            except NotFound:  # removed just now
                pass
        return {"runs": runs, "queue": queue, "training": current, "presets": presets()}

    def zip(self, name: str) -> Path:
        """The run folder as a .zip in a temporary file (the caller deletes it): its files as they are now."""
        folder = self.folder_of(name)
        fd, tmp = tempfile.mkstemp(prefix=f"makemore-{name}-", suffix=".zip")
        os.close(fd)
        with tempfile.TemporaryDirectory() as copy:  # a copy first: a training may replace a file while it is zipped
            shutil.copytree(folder, Path(copy) / name, ignore=shutil.ignore_patterns(".*"))
            shutil.make_archive(tmp.removesuffix(".zip"), "zip", copy, name)
        return Path(tmp)

    def close(self, seconds: float = 60) -> None:
        """The server stops: the training stops as Ctrl-C stops it (with a checkpoint), nothing new starts."""
        with self.lock:
            self.closing = True
            process = self.process
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(seconds)
            except subprocess.TimeoutExpired:
                process.kill()
