"""A run being trained, new or resumed: the one way into training for the command line, the sweep and the
Python API (start, resume), and the run it gives back, as trained, without reading its folder again.

An ensemble recipe ([[members]]) trains each member as a run of its own, in turn, then mixes them."""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from makemore import checkpoint, models
from makemore.callbacks import ProgressBar
from makemore.config import RunSpec, TrainConfig
from makemore.data import Corpus, examples
from makemore.ensembles import write_ensemble
from makemore.errors import ConfigError, Diverged, UserError
from makemore.files import write_json
from makemore.loop import clone_state
from makemore.ranks import world_size
from makemore.run import Run, load_run
from makemore.runfolder import CHECKPOINT, RECIPE, FolderLock, RunWriter, new_run_folder
from makemore.train import evaluate
from makemore.trainers import finished, make_trainer, resume_trainer


class Training:
    """A run about to be trained, new or resumed: its trainer, its corpus and its run folder, whose config.json
    is written when it is made."""

    def __init__(self, trainer, corpus: Corpus, model_name: str, folder: Path, note: str | None = None,
                 plot: bool = True):
        self.trainer, self.corpus, self.model_name, self.folder = trainer, corpus, model_name, Path(folder)
        self.note = note  # what the auto recipe chose, in a line
        self.changed: dict = {}  # a resumed run's settings that changed: name -> (before, now)
        self.writer = RunWriter(self.folder, corpus.source, model_name, corpus, plot=plot, note=note) \
            if trainer.ranks.lead else None
        self.lock = FolderLock(self.folder)  # until run() ends: one process trains a folder at a time
        if self.writer:
            self.lock.acquire()
            self.writer.start(trainer)

    @classmethod
    def new(cls, spec: RunSpec, out=None, plot: bool = True) -> Training:
        out = new_run_folder(out, spec.data)
        corpus = spec.corpus or Corpus.load_many(spec.data, condition=spec.condition, ascii=spec.ascii)
        return cls(make_trainer(corpus, spec.model_name, spec.options, spec.train), corpus, spec.model_name, out,
                   spec.note, plot)

    @classmethod
    def resume(cls, folder, changes: dict | None = None) -> Training:
        run = load_run(folder)
        training = cls(resume_trainer(run, changes), run.corpus, run.model_name, run.folder)
        training.changed = {k: (getattr(run.train_config, k), v) for k, v in (changes or {}).items()
                            if v is not None and v != getattr(run.train_config, k)}
        return training

    def describe(self) -> list[str]:
        """What is about to happen, in a line or two, for the one who started it."""
        t = self.trainer
        if t.step:
            shown = lambda v: f"{v:,}" if isinstance(v, int) else f"{v:g}" if isinstance(v, float) else v  # noqa: E731
            changed = "".join(f"; {k} {shown(new)} (was {shown(old)})" for k, (old, new) in self.changed.items())
            return [f"resuming {self.folder} at step {t.step:,} of {t.cfg.steps:,}{changed}"]
        ranks = f" x {t.ranks.world} processes" if t.ranks.world > 1 else ""
        counts = " and the n-gram's counts, made before the first step" if hasattr(t.model, "fit") else ""
        lines = [f"{self.corpus.source}: {len(self.corpus.items):,} items, vocabulary of {self.corpus.vocab.size}; "
                 f"{len(t.train_data[0]):,} train / {len(t.val_data[0]):,} val examples",
                 f"model {self.model_name}: {models.num_params(t.model):,} parameters{counts}; {t.cfg.steps:,} steps on "
                 f"{t.device}{ranks}, evaluated every {t.cfg.eval_every:,}; run folder {self.folder}"
                 if t.optimizer is not None else
                 f"model {self.model_name}: counted in one pass on {t.device}; run folder {self.folder}"]
        return [*self.corpus.notes, *([self.note] if self.note else []), *lines]

    def run(self, callbacks=(), verbose: bool = True) -> Run | None:
        """Train to the end (or until a callback stops it); the trained run, its kept model with the weights of
        its best evaluation, on rank 0 (None on torchrun's other ranks, which train in silence). verbose: print
        what it trains, and a progress bar. SIGINT and SIGTERM stop it after a step, with a checkpoint
        (loop.Interrupted, a KeyboardInterrupt); a diverged run ends with Diverged, its last checkpoint kept."""
        try:
            self.train(callbacks, verbose)
            return self.trained() if self.trainer.ranks.lead else None
        finally:  # however it ends: the folder is free for the next training
            self.close()

    def close(self):
        """Let go of the run folder (run() does as it ends; call it for one not run): another training may start."""
        self.lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def train(self, callbacks, verbose: bool):
        t, lead = self.trainer, self.trainer.ranks.lead
        for fn in ([self.writer] if self.writer else []) + list(callbacks):
            t.add_callback(fn)
        bar, ended = None, False
        try:
            if verbose and lead:
                print("\n".join(self.describe()), flush=True)
                if t.optimizer is not None:  # a counted model has no steps to show
                    bar = ProgressBar(t)
                    t.add_callback(bar)
            with stopped_by_signals(t):
                t.run()
            ended = True
        except Diverged as e:
            saved = self.writer.saved_step if self.writer else None
            kept = f"step {saved:,}'s checkpoint in {self.folder} is kept" if saved else "no checkpoint was written"
            raise Diverged(e.field, f"{e.message}; {kept}") from None
        finally:
            if bar:
                bar.close(keep=ended or isinstance(sys.exc_info()[1], KeyboardInterrupt))
            t.leave_ranks()

    def trained(self) -> Run:
        """The run as it ends: its model with the best evaluation's weights, the test loss of that model in its
        summary (and summary.json), and the checkpoint's contents, made here rather than read back."""
        t = self.trainer
        contents = checkpoint.state(self.model_name, t.model, self.corpus, t.cfg, t.state_dict())
        contents["model"] = clone_state(t.model)  # the last weights stay in it as the model takes the best
        if t.best_state is not None:
            t.model.load_state_dict(t.best_state)
        t.model.eval()
        test = evaluate(t.model, examples(t.model, self.corpus, "test"))
        self.writer.test_loss = test
        summary = self.writer.write_summary(t) or {}
        return Run(self.folder, self.model_name, t.model, self.corpus, t.cfg, contents, summary)

    def interrupted(self) -> str:
        """Where an interrupted training stands, in a line."""
        saved = self.writer.saved_step if self.writer else None
        where = f"the checkpoint in {self.folder} is from step {saved:,}" if saved is not None else \
            "no checkpoint was written"
        return f"interrupted at step {self.trainer.step:,}; {where}"


@contextmanager
def stopped_by_signals(trainer):
    """SIGINT and SIGTERM set trainer.interrupt (the loop stops after its step, with a checkpoint); a second one
    acts at once. Only in the main thread, and in one process (torchrun's ranks must stop at one step)."""
    if threading.current_thread() is not threading.main_thread() or trainer.ranks.world > 1:
        yield
        return
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def ask(signum, frame):
        trainer.interrupt = signal.Signals(signum).name
        for s, handler in before.items():  # the next one is not asked
            signal.signal(s, handler)

    for s in before:
        signal.signal(s, ask)
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


class EnsembleTraining:
    """An ensemble recipe about to be trained, new or resumed: its member runs trained in turn, each in
    members/<i>-<model> of the run folder, then mixed into the folder's own model. recipe.json holds the members'
    resolved configs from the start, so that resuming goes on from the member that was interrupted."""

    def __init__(self, folder: Path, members: list[dict], weights):
        self.folder, self.members, self.weights = Path(folder), members, list(weights or [])
        self.current: Training | None = None  # the member under way

    @classmethod
    def new(cls, spec: RunSpec, out=None) -> EnsembleTraining:
        if world_size() > 1:
            raise UserError("an ensemble recipe trains its members one after another; run it without torchrun")
        folder = new_run_folder(out, spec.data)
        members = [{"data": m.data, "model": m.model_name, "ascii": m.ascii, "options": m.options,
                    "train": dataclasses.asdict(m.train), "note": m.note} for m in spec.members]
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / RECIPE, {"members": members, "weights": list(spec.weights)})
        return cls(folder, members, spec.weights)

    @classmethod
    def resume(cls, folder, changes: dict | None = None) -> EnsembleTraining:
        folder = Path(folder)
        given = [k for k, v in (changes or {}).items() if v is not None]
        if given:
            raise ConfigError(given[0], "an ensemble recipe goes on as it began: its members' settings cannot change")
        if (folder / CHECKPOINT).exists():
            raise UserError(f"{folder}: its members are trained and mixed; there is nothing to resume")
        try:
            recipe = json.loads((folder / RECIPE).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{folder / RECIPE}: cannot be read ({e})") from None
        return cls(folder, recipe["members"], recipe["weights"])

    def member_folders(self) -> list[Path]:
        return [self.folder / "members" / f"{i}-{m['model']}" for i, m in enumerate(self.members, 1)]

    def run(self, callbacks=(), verbose: bool = True) -> Run:
        """Train each member not yet trained (going on from one that was interrupted), then mix them."""
        runs = []
        for i, (member, folder) in enumerate(zip(self.members, self.member_folders()), 1):
            run = load_run(folder) if (folder / CHECKPOINT).exists() else None
            if run is None or not finished(run):
                if verbose:
                    print(f"member {i} of {len(self.members)}: {folder}", flush=True)
                if run is not None:
                    self.current = Training.resume(folder)
                else:
                    spec = RunSpec(member["data"], member["model"], member["options"], TrainConfig(**member["train"]),
                                   ascii=member["ascii"], note=member["note"])
                    self.current = Training.new(spec, folder)
                run = self.current.run(callbacks, verbose=verbose)
                self.current = None
            runs.append(run)
        return write_ensemble(runs, self.folder, self.weights)

    def interrupted(self) -> str:
        return self.current.interrupted() if self.current else "no member was training"

    def close(self):  # a member holds its folder only while run() trains it
        pass

    __enter__, __exit__ = Training.__enter__, Training.__exit__


def start(spec: RunSpec, out=None, plot: bool = True) -> Training | EnsembleTraining:
    """A new run of a resolved description (config.resolve and makemore.resolve make one): the one way into
    training. An ensemble recipe trains its members, then mixes them."""
    if spec.members:
        return EnsembleTraining.new(spec, out)
    return Training.new(spec, out, plot)


def resume(folder, **changes) -> Training | EnsembleTraining:
    """A run that goes on from its folder as if it had never stopped, with changes of the settings that may
    change (trainers.RESUMABLE: steps, time_limit, patience, device)."""
    if (Path(folder) / RECIPE).exists():
        return EnsembleTraining.resume(folder, changes)
    return Training.resume(folder, changes)
