"""Hyperparameter search with Optuna: TPE sampling, pruning on the periodic val loss, any Optuna storage.

A sweep is a folder: study.db (SQLite, unless --storage names another database), trials/NNNN/ (one run folder
per trial), and at the end best.toml (the base config with the best trial's values), trials.csv and
history.png. Running the same command again resumes it: finished trials are kept, and a trial whose worker
was killed is found by its stopped heartbeat and run again with the same values.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from makemore.config import check_file_option, check_train_value, read_config, read_toml, resolve_run, to_toml
from makemore.data import Corpus
from makemore.errors import ConfigError, UserError
from makemore.files import write_atomic
from makemore.training import start

GRACE_S = 20  # a trial whose heartbeat is silent this long is taken for killed, failed and queued again
SECTIONS = ("options", "train")


@dataclass
class Param:
    """One entry of the space: [section] key = {low, high[, log][, step]} or {choices}."""

    section: str
    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list | None = None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.name, self.choices)
        if all(isinstance(v, int) for v in (self.low, self.high)) and (self.step is None or isinstance(self.step, int)):
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)


def read_space(path: Path, model_name: str) -> list[Param]:
    """The search space file; a bad entry is a one-line error naming the file and the entry."""
    doc = read_toml(path, "space")
    params = []
    for section, table in doc.items():
        if section not in SECTIONS or not isinstance(table, dict):
            raise UserError(f"{path}: {section!r}: the space has the tables [options] and [train] only")
        for key, entry in table.items():
            where = f"[{section}] {key}"
            if not isinstance(entry, dict):
                raise UserError(f"{path}: {where}: expected a table such as {{ low = 1e-3, high = 1e-1, log = true }} "
                                f"or {{ choices = [32, 64] }}")
            unknown = set(entry) - {"low", "high", "log", "step", "choices"}
            if unknown:
                raise UserError(f"{path}: {where}: unknown field {sorted(unknown)[0]!r}; fields: low, high, log, step, choices")
            if "choices" in entry:
                if set(entry) != {"choices"} or not isinstance(entry["choices"], list) or not entry["choices"]:
                    raise UserError(f"{path}: {where}: choices must be a non-empty list, alone in its entry")
                values = entry["choices"]
            else:
                if "low" not in entry or "high" not in entry:
                    raise UserError(f"{path}: {where}: needs low and high, or choices")
                low, high = entry["low"], entry["high"]
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
                    raise UserError(f"{path}: {where}: low and high must be numbers with low < high, got {low!r} and {high!r}")
                if not isinstance(entry.get("log", False), bool):
                    raise UserError(f"{path}: {where}: log must be true or false")
                if entry.get("log") and (low <= 0 or "step" in entry):
                    raise UserError(f"{path}: {where}: a log scale needs low > 0 and no step")
                step = entry.get("step")
                if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
                    raise UserError(f"{path}: {where}: step must be a positive number, got {step!r}")
                values = [low, high]
            for value in values:  # each end (or choice) must be a value the config file itself would accept
                if section == "train":
                    check_train_value(path, section, key, value)
                else:
                    check_file_option(path, section, model_name, key, value)
            params.append(Param(section, key, choices=entry.get("choices"), low=entry.get("low"), high=entry.get("high"),
                                log=entry.get("log", False), step=entry.get("step")))
    if not params:
        raise UserError(f"{path}: the space is empty; give at least one entry under [options] or [train]")
    return params


def trial_values(params: dict) -> dict:
    """A trial's values ({"train.lr": 0.01, "options.n_embd": 32}) by field name, as RunSpec.override takes them."""
    return {name.split(".", 1)[1]: value for name, value in params.items()}


def with_values(config: dict, params: dict, gpu: bool) -> dict:
    """The base config with a trial's values set where they took effect: in [train] / [options], or in
    [cuda.train] / [cuda.options] for a sweep that trained on a GPU (there they override the base's own)."""
    doc = copy.deepcopy(config)
    for name, value in params.items():
        section, key = name.split(".", 1)
        tables = doc.setdefault("cuda", {}) if gpu else doc
        tables.setdefault(section, {})[key] = value
    return doc


@dataclass
class Sweep:
    """Everything a worker needs, plain enough to hand to a spawned process."""

    config_path: Path
    space_path: Path
    folder: Path
    storage: str
    study_name: str
    trials: int
    threads: int
    grace: float = GRACE_S  # seconds; its trials write a heartbeat four times in it


def storage_url(folder: Path, url: str | None) -> str:
    return url or f"sqlite:///{(folder / 'study.db').resolve()}"


def shown(url: str) -> str:
    """The URL as printed: any password hidden."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def open_study(sweep: Sweep, config: dict, params: list[Param], create: bool = False):
    """The sweep's study and the storage it is in (for a trial's heartbeats)."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial prints its own line
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
    engine = {"connect_args": {"timeout": 60}} if sweep.storage.startswith("sqlite") else {}
    for attempt in range(5):
        try:
            storage = optuna.storages.RDBStorage(
                sweep.storage, engine_kwargs=engine, heartbeat_interval=max(1, round(sweep.grace / 4)),
                grace_period=max(2, round(sweep.grace)),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
            break
        except Exception as e:  # a malformed URL, a missing driver, a server that does not answer
            # another machine made the tables just now: a row (IntegrityError) or, on PostgreSQL, a type of the
            # schema (ProgrammingError: DuplicateObject) it made first
            raced = type(e).__name__ == "IntegrityError" or "already exists" in str(e)
            if raced and attempt < 4:
                time.sleep(1 + attempt)
                continue
            raise ConfigError("storage", f"cannot open {shown(sweep.storage)} ({type(e).__name__}: "
                                         f"{str(e).splitlines()[0]})") from None
    sampler = optuna.samplers.TPESampler(n_startup_trials=min(10, max(2, sweep.trials // 3)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=min(5, max(1, sweep.trials // 4)))
    if not create:
        return optuna.load_study(study_name=sweep.study_name, storage=storage, sampler=sampler,
                                 pruner=pruner), storage
    study = optuna.create_study(study_name=sweep.study_name, storage=storage, sampler=sampler, pruner=pruner,
                                direction="minimize", load_if_exists=True)
    described = {"config": config, "space": [p.__dict__ for p in params]}
    if "sweep" not in study.user_attrs:
        study.set_user_attr("sweep", described)
    elif study.user_attrs["sweep"] != json.loads(json.dumps(described)):
        raise UserError(f"study {sweep.study_name!r} in {shown(sweep.storage)} was started with another config or space; "
                        "give another --out or --study")
    return study, storage


def counts(study) -> dict:
    """How many trials are in each state: complete, pruned, running, waiting, fail."""
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    return {state: states.count(state) for state in ("complete", "pruned", "running", "waiting", "fail")}


def work(sweep: Sweep, worker: int = 0):
    """One worker: trials until the study has sweep.trials finished ones. Several run side by side, here or on
    other machines sharing the storage."""
    import optuna

    config = read_config(sweep.config_path)
    spec = resolve_run(config, sweep.config_path)
    params = read_space(sweep.space_path, spec.model_name)
    corpus = Corpus.load_many(spec.data, condition=spec.condition, ascii=spec.ascii)
    study, storage = open_study(sweep, config, params)
    study_id = storage.get_study_id_from_name(sweep.study_name)

    def objective(trial):
        # a heartbeat before the first value: Optuna's heartbeat thread writes its first a moment after the trial
        # starts, and a trial killed with its values but no heartbeat was waited on for ever by a resumed sweep
        # (fail_stale_trials looks at heartbeats that stopped, fail_unborn at trials with no values)
        storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number))
        values = {p.name: p.suggest(trial) for p in params}
        try:  # the trial's values after every table of the base, [cuda.*] included
            training = start(dataclasses.replace(spec.override(trial_values(values)), corpus=corpus),
                             sweep.folder / "trials" / f"{trial.number:04d}",
                             plot=False)  # a figure per evaluation would cost more than a short trial
        except UserError as e:  # values that do not go together, such as n_embd not a multiple of n_head
            print(f"trial {trial.number:>3}: failed: {e}", flush=True)
            trial.set_user_attr("error", str(e))
            return float("nan")  # Optuna's mark of a failed trial
        trainer = training.trainer
        trial.set_user_attr("params_count", sum(p.numel() for p in trainer.model.parameters()))
        pruned = []

        def report(trainer, event):
            if event != "eval" or trainer.step >= trainer.cfg.steps:
                return
            val = trainer.last_eval["val_loss"]
            trial.report(val, trainer.step)
            if not math.isfinite(val) or trial.should_prune():
                pruned.append(trainer.step)
                trainer.stop = True

        try:
            training.run([report], verbose=False)
        except KeyboardInterrupt:  # not lost: queued again with the same values, for the resumed sweep
            study.enqueue_trial(values, skip_if_exists=False)
            raise
        result = trainer.last_eval  # the final evaluation
        trial.set_user_attr("steps", trainer.step)
        trial.set_user_attr("train_loss", result["train_loss"])
        trial.set_user_attr("time_s", round(trainer.elapsed, 2))
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        if pruned:
            print(f"trial {trial.number:>3}: pruned at step {pruned[0]:,}, val {result['val_loss']:.4f} ({shown})", flush=True)
            raise optuna.TrialPruned()
        print(f"trial {trial.number:>3}: val {result['val_loss']:.4f} in {trainer.elapsed:.1f}s ({shown})", flush=True)
        return result["val_loss"]

    while True:
        n = counts(study)
        finished = n["complete"] + n["pruned"]
        if n["fail"] > 2 * sweep.trials:
            raise UserError(f"{n['fail']} trials failed; see the messages above and mend the space or the config")
        if n["waiting"]:  # queued: killed trials put back with their values come first, even past the count
            study.optimize(objective, n_trials=1)
        elif finished >= sweep.trials and not n["running"]:
            return
        elif finished + n["running"] >= sweep.trials:
            # the rest are running, here, elsewhere, or in a worker that was killed: wait for each to end, or to
            # be found stale by its heartbeat and queued again
            time.sleep(1)
            optuna.storages.fail_stale_trials(study)
            fail_unborn(study, sweep.grace)
        else:
            study.optimize(objective, n_trials=1)


def fail_unborn(study, grace: float):
    """Trials killed as they were made, before their first value or heartbeat: Optuna's heartbeat never finds them
    (it looks at heartbeats that stopped), so they would be 'running' for ever and a resumed sweep would wait on
    them. One with no value this long after its start is failed (it has no values to run again)."""
    from datetime import datetime

    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if not trial.params and (datetime.now() - trial.datetime_start).total_seconds() > grace:
            # skip_if_finished: another worker may have failed it first
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def worker_main(sweep: Sweep, worker: int):
    """A spawned worker's entry: a one-line message rather than a traceback."""
    import sys

    import torch

    torch.set_num_threads(sweep.threads)  # this process's share of the cores; one worker alone keeps its caller's
    try:
        work(sweep, worker)
    except UserError as e:
        print(f"makemore sweep: worker {worker}: error: {e}", file=sys.stderr)
        raise SystemExit(2)
    except KeyboardInterrupt:
        raise SystemExit(130)


def run_sweep(sweep: Sweep, workers: int) -> dict:
    """Create or resume the study, run the workers, write the outputs; returns the best trial's summary."""
    config = read_config(sweep.config_path)
    spec = resolve_run(config, sweep.config_path)
    if not spec.data:
        raise UserError(f"{sweep.config_path}: a sweep's base config must name its data")
    params = read_space(sweep.space_path, spec.model_name)
    sweep.folder.mkdir(parents=True, exist_ok=True)
    study, _ = open_study(sweep, config, params, create=True)
    n = counts(study)
    print(f"sweep {sweep.folder}: {len(params)} parameters, {n['complete'] + n['pruned']} of {sweep.trials} trials done, "
          f"{workers} worker{'s' * (workers > 1)}; storage {shown(sweep.storage)}", flush=True)
    try:
        if workers == 1:
            work(sweep)
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no forked torch threads
            processes = [context.Process(target=worker_main, args=(sweep, k)) for k in range(workers)]
            for p in processes:
                p.start()
            try:
                for p in processes:
                    p.join()
            except KeyboardInterrupt:  # the workers got the same Ctrl-C; let them put their trials back
                for p in processes:
                    p.join(timeout=30)
                raise
            failed = [p.exitcode for p in processes if p.exitcode]
            if failed:
                raise UserError(f"{len(failed)} of {workers} workers failed (exit codes {failed}); "
                                "run the same command to resume")
    finally:
        write_outputs(sweep, config, study, spec.gpu)
    return best_summary(study)


def best_summary(study) -> dict:
    try:
        best = study.best_trial
    except ValueError:
        return {}
    return {"number": best.number, "val_loss": best.value, "params": best.params}


def write_outputs(sweep: Sweep, config: dict, study, gpu: bool):
    """best.toml, trials.csv and history.png, from whatever the study holds now."""
    from makemore.plots import sweep_history

    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    header = ["trial", "state", "val_loss", "train_loss", "steps", "time_s", "params_count", *names]
    rows = []
    for t in trials:
        attrs = t.user_attrs
        value = t.value if t.value is not None else (t.intermediate_values[max(t.intermediate_values)]
                                                      if t.intermediate_values else None)
        rows.append([t.number, t.state.name.lower(), value, attrs.get("train_loss"), attrs.get("steps"),
                     attrs.get("time_s"), attrs.get("params_count"), *(t.params.get(k) for k in names)])
    text = "".join(",".join("" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v) for v in row) + "\n"
                   for row in [header, *rows])
    write_atomic(sweep.folder / "trials.csv", text)
    finished = [(r[0], r[2], r[1]) for r in rows if r[1] in ("complete", "pruned") and r[2] is not None]
    sweep_history(finished, sweep.folder / "history.png", title=f"sweep {sweep.study_name}")
    best = best_summary(study)
    if best:
        header_line = (f"# The best of {len(finished)} trials of sweep {sweep.study_name!r}: trial {best['number']}, "
                       f"val {best['val_loss']:.4f}.\n")
        write_atomic(sweep.folder / "best.toml", header_line + to_toml(with_values(config, best["params"], gpu)))


def table(folder: Path) -> str:
    """trials.csv as aligned columns, for the terminal."""
    rows = [line.split(",") for line in (folder / "trials.csv").read_text().splitlines()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)
