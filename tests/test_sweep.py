"""makemore sweep: Optuna TPE with pruning, SQLite by default, several workers, resumed after a kill, and one
study shared by two sweeps (two machines) through a real PostgreSQL server."""

import contextlib
import csv
import glob
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest

from conftest import ROOT, assert_one_line_error, cli, free_port

optuna = pytest.importorskip("optuna")

SPACE = """
[train]
lr = { low = 1e-3, high = 1e-1, log = true }
[options]
n_embd = { choices = [4, 8] }
n_hidden = { low = 8, high = 32, step = 8 }
"""


@pytest.fixture
def sweep_files(tmp_path, word_file):
    def make(steps=60, eval_every=20, time_limit=0):
        base = tmp_path / "base.toml"
        base.write_text(f'data = "{word_file.as_posix()}"\nmodel = "mlp"\n[options]\nblock_size = 3\n'
                        f'[train]\nsteps = {steps}\nbatch_size = 16\neval_every = {eval_every}\noptimizer = "adamw"\n'
                        f'time_limit = {time_limit}\n')
        space = tmp_path / "space.toml"
        space.write_text(SPACE)
        return base, space

    return make


def finished(trials):
    return [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


def load(folder, storage=None, study=None):
    return optuna.load_study(study_name=study or Path(folder).name, storage=storage or f"sqlite:///{folder}/study.db")


@pytest.mark.slow
def test_two_workers_write_best_config_table_and_history_then_resume_to_more_trials(tmp_path, sweep_files):
    from makemore.config import read_config

    base, space = sweep_files()
    out = tmp_path / "sweep"
    result = cli("sweep", "--config", base, "--space", space, "--trials", 4, "--workers", 2, "--out", out)
    assert result.returncode == 0, result.stderr
    study = load(out)
    done = finished(study.trials)
    assert len(done) >= 4
    assert {t.number for t in done} <= {t.number for t in study.trials}
    best = study.best_trial
    config = read_config(out / "best.toml")  # a valid run config, the best trial's values in their tables
    assert config["train"]["lr"] == best.params["train.lr"]
    assert config["options"]["n_embd"] == best.params["options.n_embd"]
    assert config["options"]["n_hidden"] == best.params["options.n_hidden"]
    assert config["options"]["block_size"] == 3 and config["model"] == "mlp"  # the base config's own values stay
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [int(r["trial"]) for r in rows] == [t.number for t in study.trials]
    assert float(min((r for r in rows if r["state"] == "complete"), key=lambda r: float(r["val_loss"]))["val_loss"]) \
        == pytest.approx(best.value, rel=1e-5)
    assert (out / "history.png").read_bytes()[:4] == b"\x89PNG"
    for t in done:  # every trial is a run folder like any other
        assert (out / "trials" / f"{t.number:04d}" / "summary.json").exists()
    assert f"best: trial {best.number}, val {best.value:.4f}" in result.stdout

    before = {t.number: (t.params, t.value) for t in done}
    again = cli("sweep", "--config", base, "--space", space, "--trials", 6, "--out", out)
    assert again.returncode == 0, again.stderr
    assert "4 of 6 trials done" in again.stdout or "5 of 6 trials done" in again.stdout
    after = load(out).trials
    assert len(finished(after)) >= 6
    assert all((after[n].params, after[n].value) == kept for n, kept in before.items())  # nothing lost or redone


def test_pruning_stops_trials_early_on_the_periodic_val_loss(tmp_path, sweep_files):
    base, space = sweep_files(steps=100, eval_every=10)
    out = tmp_path / "sweep"
    result = cli("sweep", "--config", base, "--space", space, "--trials", 8, "--out", out)
    assert result.returncode == 0, result.stderr
    trials = load(out).trials
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, "eight trials, ten reports each and a median pruner: some stop early"
    for t in pruned:
        assert t.user_attrs["steps"] < 100 and max(t.intermediate_values) == t.user_attrs["steps"]


@pytest.mark.slow
def test_a_killed_sweep_resumes_with_no_finished_trial_lost_and_the_killed_trial_run_again(tmp_path, sweep_files):
    # One evaluation, at the last step, so no trial is pruned: a trial ends only after its 600 steps (most of a
    # second or more). The kill comes when one has just started, so it is still running when the kill lands. One
    # worker: several (spawned processes) are test_two_workers_...'s; here they would only cost their start. The
    # resumed sweep asks for one trial more than were kept: the killed one, run again once its heartbeat has been
    # silent 4 s (heartbeats every second: with one worker no live trial is ever checked for them).
    base, space = sweep_files(steps=600, eval_every=600)
    out = tmp_path / "sweep"
    args = [sys.executable, "-m", "makemore", "sweep", *map(str, ["--config", base, "--space", space, "--trials", 10,
                                                                   "--workers", 1, "--out", out, "--grace", 4])]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            time.sleep(0.1)
            if not (out / "study.db").exists():
                continue
            now = datetime.now()  # Optuna stamps a trial's start with the local clock
            try:  # Optuna's tables read directly: loading the study ten times a second took a core from the sweep
                with contextlib.closing(sqlite3.connect(out / "study.db", timeout=5)) as db:
                    trials = db.execute("SELECT state, datetime_start, (SELECT COUNT(*) FROM trial_params p WHERE "
                                        "p.trial_id = t.trial_id) FROM trials t").fetchall()
            except sqlite3.Error:  # the tables are being made
                continue
            done = [values for state, _, values in trials if state == "COMPLETE"]
            # a trial's values are suggested one by one: the kill waits for one that has all of them
            if len(done) >= 2 and any(state == "RUNNING" and values == done[0] and
                                      (now - datetime.fromisoformat(start)).total_seconds() < 0.5
                                      for state, start, values in trials):
                break
        else:
            pytest.fail("the sweep did not get going")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # mid-trial, with no chance to clean up
        proc.wait()
    killed = load(out).trials
    kept = {t.number: (t.params, t.value) for t in finished(killed)}
    n_values = len(finished(killed)[0].params)
    interrupted = [t.params for t in killed if t.state.name == "RUNNING" and len(t.params) == n_values]
    assert interrupted

    result = cli("sweep", "--config", base, "--space", space, "--trials", len(kept) + 1, "--workers", 1, "--out",
                 out, "--grace", 4)  # the killed trial's heartbeat is silent 4 s, not the default 20, before a rerun
    assert result.returncode == 0, result.stderr
    resumed = load(out).trials
    assert len(finished(resumed)) >= len(kept) + 1
    assert all((resumed[n].params, resumed[n].value) == v for n, v in kept.items())
    later = [t.params for t in finished(resumed) if t.number > max(t.number for t in killed)]
    for params in interrupted:  # each killed trial is found by its heartbeat and run again with its values
        assert params in later, (params, later)


def test_a_storage_whose_tables_another_machine_is_making_is_opened_again(tmp_path, monkeypatch):
    """Two machines that start at once both make the schema: on PostgreSQL the second one's CREATE TYPE fails
    ('type "studydirection" already exists'); it waits and opens the storage again, as for a duplicate row."""
    import optuna

    from makemore.sweep import Sweep, open_study

    tries = []

    class Racing(optuna.storages.RDBStorage):
        def __init__(self, *args, **kwargs):
            tries.append(1)
            if len(tries) == 1:
                raise RuntimeError('(psycopg2.errors.DuplicateObject) type "studydirection" already exists')
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", Racing)
    monkeypatch.setattr("makemore.sweep.time.sleep", lambda s: None)
    sweep = Sweep(tmp_path / "base.toml", tmp_path / "space.toml", tmp_path, f"sqlite:///{tmp_path / 'study.db'}",
                  "raced", 2, 1)
    assert open_study(sweep, {}, [], create=True)[0].study_name == "raced" and len(tries) == 2


def test_a_trial_killed_as_it_was_made_is_failed_not_waited_for(tmp_path):
    """Killed before its first value or heartbeat, a trial is 'running' for ever to Optuna; the sweep fails it once
    its grace has passed, so that a resumed sweep does not wait on it. A trial with values is left to its heartbeat."""
    import optuna

    from makemore.sweep import fail_unborn

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    study.ask()  # killed as it was made
    live = study.ask()
    live.suggest_float("x", 0, 1)
    fail_unborn(study, grace=60)
    assert [t.state.name for t in study.trials] == ["RUNNING", "RUNNING"]  # not yet: its grace has not passed
    fail_unborn(study, grace=0)
    assert [t.state.name for t in study.trials] == ["FAIL", "RUNNING"]


def test_a_trial_has_a_heartbeat_before_its_first_value(tmp_path, sweep_files, monkeypatch):
    """A trial killed after its values but before Optuna's heartbeat thread first wrote had no heartbeat: no value
    would fail it (fail_unborn) and no stopped heartbeat (fail_stale_trials), and a resumed sweep waited on it for
    ever (the killed-sweep test hung so in a fresh clone). The sweep writes the first heartbeat itself."""
    from makemore.config import read_config
    from makemore.sweep import Param, Sweep, open_study, read_space, storage_url, work

    base, space = sweep_files()
    folder = tmp_path / "sweep"
    folder.mkdir()
    sweep = Sweep(base, space, folder, storage_url(folder, None), "sweep", 1, 1)
    open_study(sweep, read_config(base), read_space(space, "mlp"), create=True)
    beats = []

    def suggest(param, trial):  # the first value: what a kill now would leave
        with contextlib.closing(sqlite3.connect(folder / "study.db")) as db:
            beats.append(db.execute("SELECT COUNT(*) FROM trial_heartbeats h JOIN trials t ON h.trial_id = t.trial_id "
                                    "WHERE t.number = ?", (trial.number,)).fetchone()[0])
        raise KeyboardInterrupt

    monkeypatch.setattr(Param, "suggest", suggest)
    with pytest.raises(KeyboardInterrupt):
        work(sweep)
    assert beats == [1]


@pytest.mark.parametrize("text, fragment", [
    ("[train]\nlr = 0.1\n", "[train] lr: expected a table"),
    ("[train]\nlr = { low = 0.1, high = 0.01 }\n", "[train] lr: low and high must be numbers with low < high"),
    ("[train]\nlr = { low = 0.0, high = 0.1 }\n", "[train] lr: expected a positive number, got '0.0'"),
    ("[train]\nlr = { low = 0.0, high = 0.1, log = true }\n", "[train] lr: a log scale needs low > 0"),
    ("[train]\nlr = { low = 1e-3, hi = 0.1 }\n", "[train] lr: unknown field 'hi'"),
    ("[train]\nlearning_rate = { low = 1e-3, high = 0.1 }\n", "unknown key 'learning_rate' in [train]"),
    ("[train]\noptimizer = { choices = [\"sgd\", \"lion\"] }\n", "[train] optimizer: expected one of sgd, adamw, got 'lion'"),
    ("[options]\nn_head = { choices = [2, 4] }\n", "unknown key 'n_head' in [options] for model 'mlp'"),
    ("[options]\nn_embd = { choices = [] }\n", "[options] n_embd: choices must be a non-empty list"),
    ("[options]\nn_embd = { low = 4.5, high = 8 }\n", "[options] n_embd: expected int, got float 4.5"),
    ("[model]\nn_embd = { choices = [4] }\n", "'model': the space has the tables [options] and [train] only"),
    ("", "the space is empty"),
    ("[train\n", "not valid TOML"),
])
def test_bad_space_file_names_the_entry(tmp_path, text, fragment):
    from makemore.errors import UserError
    from makemore.sweep import read_space

    space = tmp_path / "space.toml"
    space.write_text(text)
    with pytest.raises(UserError) as e:
        read_space(space, "mlp")
    assert str(e.value).startswith(f"{space}: ") and fragment in str(e.value) and "\n" not in str(e.value)


def test_bad_space_file_from_the_cli_is_one_line_and_starts_nothing(tmp_path, sweep_files):
    base, space = sweep_files()
    space.write_text("[train]\nlr = { low = 0.1, high = 0.01 }\n")
    result = cli("sweep", "--config", base, "--space", space, "--trials", 2, "--out", tmp_path / "sweep")
    assert_one_line_error(result, "space.toml: [train] lr: low and high must be numbers with low < high")
    assert not (tmp_path / "sweep" / "study.db").exists()


def test_bad_storage_url_is_named(tmp_path, sweep_files):
    base, space = sweep_files()
    result = cli("sweep", "--config", base, "--space", space, "--storage", "nosuchdb://x/y", "--out", tmp_path / "s")
    assert_one_line_error(result, "--storage: cannot open nosuchdb://x/y")


def test_a_study_resumed_with_another_space_is_refused(tmp_path, sweep_files):
    base, space = sweep_files(steps=20, eval_every=10)
    out = tmp_path / "sweep"
    assert cli("sweep", "--config", base, "--space", space, "--trials", 1, "--out", out).returncode == 0
    space.write_text(SPACE.replace("[4, 8]", "[4, 16]"))
    assert_one_line_error(cli("sweep", "--config", base, "--space", space, "--trials", 2, "--out", out),
                          "was started with another config or space")


# ----------------------------------------------------------------------------- PostgreSQL


def postgres_bin(name):
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of its own on a free localhost port, for the length of this module."""
    pytest.importorskip("psycopg2", reason="the postgres driver is not installed (pip install makemore[postgres])")
    initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server here (Debian: apt-get install postgresql)")
    as_user = []
    folder = Path(tempfile.mkdtemp(prefix="makemore-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = folder / "data"
    try:
        subprocess.run([*as_user, initdb, "-D", data, "-U", "postgres", "--auth=trust"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", data, "-l", folder / "log", "-w", "-t", "60", "-o",
                        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"], check=True,
                       capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"the PostgreSQL server could not be started: {e}")
    yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "fast", "stop"], capture_output=True, timeout=120)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_machines_share_one_study_through_postgresql(tmp_path, sweep_files, postgres_url):
    """Two sweeps with their own folders (as two machines would have) and one --storage URL: they split the
    trials between them, and the study ends with the trials asked for. (Several workers on one machine share a
    storage as two machines do: test_two_workers_... runs them, on SQLite.)"""
    base, space = sweep_files(steps=10**6, eval_every=100, time_limit=3)  # trials long enough that the second
    # machine gets one, on a machine of any speed: of 60 steps (and of 400, on a fast one) the first ran all 4 while
    # the second, which had lost the race to make the schema, waited 1 s
    common = ["--config", base, "--space", space, "--trials", 4, "--workers", 1, "--storage", postgres_url,
              "--study", "shared"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    machines = [subprocess.Popen([sys.executable, "-m", "makemore", "sweep", *map(str, common), "--out",
                                  str(tmp_path / f"machine{k}")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=env) for k in range(2)]
    outputs = [m.communicate(timeout=300) for m in machines]
    for m, (stdout, stderr) in zip(machines, outputs):
        assert m.returncode == 0, stderr
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    done = finished(study.trials)
    assert 4 <= len(done) <= 4 + 2  # each machine may start one trial just as the last ones finish
    ran = [{int(m[1]) for m in re.finditer(r"^trial +(\d+):", stdout, re.M)} for stdout, _ in outputs]
    assert ran[0] and ran[1] and not ran[0] & ran[1]  # both machines worked, never on the same trial
    for k in range(2):
        assert (tmp_path / f"machine{k}" / "best.toml").exists()


def test_shipped_sweep_files_are_valid():
    from makemore.config import read_config, resolve_run
    from makemore.sweep import read_space

    base = ROOT / "configs" / "sweep" / "wavenet-short.toml"
    spec = resolve_run(read_config(base), base)
    params = read_space(ROOT / "configs" / "sweep" / "wavenet-space.toml", spec.model_name)
    assert [p.name for p in params] == ["train.lr", "train.weight_decay", "options.n_embd", "options.dropout"]


def test_on_a_gpu_each_trial_trains_with_its_own_values_and_best_toml_keeps_the_cuda_tables(tmp_path, word_file,
                                                                                              monkeypatch):
    """A trial's values come after the base's [cuda.*] tables (they once came before, so on a GPU every trial
    of an lr sweep over --preset fast trained at [cuda.train]'s lr), and best.toml keeps those tables, with the
    best values where they took effect."""
    import makemore.config
    from makemore.config import read_config, resolve_run

    monkeypatch.setattr(makemore.config, "on_gpu", lambda device: device in ("auto", "cuda"))  # the trainer: still CPU
    base = tmp_path / "base.toml"
    base.write_text(f'data = "{word_file.as_posix()}"\nmodel = "mlp"\n[options]\nblock_size = 3\n'
                    '[train]\nsteps = 60\nbatch_size = 16\nlr = 0.05\neval_every = 20\noptimizer = "adamw"\n'
                    '[cuda.options]\nn_hidden = 24\n[cuda.train]\nsteps = 20\nlr = 0.015\neval_every = 10\n')
    space = tmp_path / "space.toml"
    space.write_text("[train]\nlr = { low = 1e-3, high = 1e-1, log = true }\n")
    out = tmp_path / "sweep"
    result = cli("sweep", "--config", base, "--space", space, "--trials", 3, "--out", out)
    assert result.returncode == 0, result.stderr
    trials = finished(load(out).trials)
    assert len(trials) >= 3
    for t in trials:
        config = json.loads((out / "trials" / f"{t.number:04d}" / "config.json").read_text())
        assert config["train"]["lr"] == t.params["train.lr"]  # its own value, not [cuda.train]'s 0.015
        assert config["train"]["steps"] == 20 and config["model_config"]["n_hidden"] == 24  # the GPU's recipe
    best = load(out).best_trial
    doc = read_config(out / "best.toml")
    assert doc["cuda"]["train"]["lr"] == best.params["train.lr"] and doc["cuda"]["options"] == {"n_hidden": 24}
    assert doc["train"]["lr"] == 0.05  # the CPU's recipe as the base had it
    on_gpu = resolve_run(doc, out / "best.toml")
    assert (on_gpu.train.lr, on_gpu.train.steps, on_gpu.options["n_hidden"]) == (best.params["train.lr"], 20, 24)
    monkeypatch.setattr(makemore.config, "on_gpu", lambda device: False)
    assert resolve_run(doc, out / "best.toml").train.lr == 0.05
