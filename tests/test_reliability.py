"""Hostile input and faults: nothing saved is lost on any kill, memory stays bounded whatever the list, and every
bad input or fault is one line naming what was wrong, exit 2, no traceback."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

import makemore
from makemore.lists import MAX_ITEM
from makemore.run import load_run
from makemore.sample import Job, Options, generate_jobs
from makemore.trainers import make_trainer

from conftest import CORPUS, VOCAB, Killed, assert_one_line_error, build, cli, make_items, train_into, write_word_file

FLAGS = ["--n-embd", 8, "--n-hidden", 16, "--samples", 0]


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def started(args, folder, until=lambda folder: (folder / "model.pt").exists()):
    """makemore train in a process of its own, once until(folder) holds: the process."""
    proc = subprocess.Popen([sys.executable, "-m", "makemore", "train", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.time() + 120
    while not until(folder) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    return proc


def assert_error_after_the_bar(result, *fragments):
    """A run that fails after its progress bar began: exit 2, no traceback, and one error line, the last."""
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def same_weights(a, b):
    a, b = load_run(a).state["model"], load_run(b).state["model"]
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- kills


# A run of 500 steps, evaluated every 200: the killed runs below resume to its weights. Checkpoints between
# evaluations (--checkpoint-every) change nothing of a run's numbers, so it is trained once, without them.
STEPS = ["--steps", 500, "--eval-every", 200, "--log-every", 100]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run: its folder, and the list it trained on."""
    folder = tmp_path_factory.mktemp("whole")
    words = write_word_file(folder)
    assert cli("train", words, *FLAGS, *STEPS, "--checkpoint-every", 0, "--out", folder / "run").returncode == 0
    return folder / "run", words


@pytest.mark.slow
def test_a_run_killed_at_a_random_moment_resumes_to_the_uninterrupted_weights(tmp_path, whole):
    """SIGKILL at a random moment, with checkpoints every 0.2 s between evaluations 200 steps apart: the resumed
    run ends with the uninterrupted run's last weights, its summary and its metrics."""
    whole, word_file = whole
    args = [word_file, *FLAGS, *STEPS, "--checkpoint-every", 0.2]
    killed = tmp_path / "killed"
    proc = started([*args, "--out", killed], killed)
    time.sleep(random.Random(int(time.time())).uniform(0.1, 0.6))
    proc.kill()
    proc.communicate()
    step = load_run(killed).state["step"]
    assert 0 < step < 500, "killed before its first checkpoint or after the end"
    result = cli("train", "--resume", killed, "--samples", 0)
    assert result.returncode == 0, result.stderr
    assert f"resuming {killed} at step {step:,}" in result.stdout
    assert same_weights(whole, killed)
    drop = lambda records: [{k: v for k, v in r.items() if k != "time"} for r in records]  # noqa: E731
    lines = [drop(map(json.loads, (f / "metrics.jsonl").read_text().splitlines())) for f in (whole, killed)]
    assert lines[0] == lines[1]
    assert strict_json((whole / "summary.json").read_text())["val_loss"] == \
        strict_json((killed / "summary.json").read_text())["val_loss"]
    assert_one_line_error(cli("train", "--resume", killed), "the run is complete (500 of 500 steps)")
    assert_one_line_error(cli("train", word_file, "--resume", killed), "--resume: the run folder holds its data")


@pytest.mark.slow
def test_sigterm_saves_the_step_and_says_how_to_go_on(tmp_path, whole):
    whole, word_file = whole
    args = [word_file, *FLAGS, *STEPS, "--checkpoint-every", 0]  # no checkpoint but the evaluations'
    stopped = tmp_path / "stopped"
    proc = started([*args, "--out", stopped], stopped, until=lambda f: (f / "config.json").exists())
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    last = err.strip().splitlines()[-1]
    assert f"makemore train --resume {stopped} goes on" in last and "Traceback" not in err
    step = load_run(stopped).state["step"]
    assert f"interrupted at step {step:,}; the checkpoint in {stopped} is from step {step:,}" in last
    assert cli("train", "--resume", stopped, "--samples", 0).returncode == 0
    assert same_weights(whole, stopped)


def test_a_training_not_run_lets_go_of_its_folder_when_closed(tmp_path, word_file):
    """makemore.start/resume hold the folder from the start (describe() first, then run() or not)."""
    from makemore.runfolder import training_pid

    settings = dict(n_embd=8, n_hidden=16, steps=4, eval_every=2)
    with makemore.start(word_file, out=tmp_path / "new", **settings) as training:
        assert training_pid(tmp_path / "new") == os.getpid() and training.describe()
    assert training_pid(tmp_path / "new") is None
    folder = tmp_path / "run"
    makemore.train(word_file, out=folder, verbose=False, **settings)
    makemore.resume(folder, steps=6).close()
    assert training_pid(folder) is None
    with makemore.resume(folder, steps=6) as training:
        with pytest.raises(makemore.UserError, match="is training this run"):
            makemore.resume(folder, steps=6)  # held while the first is open, though by this same process
        assert training.run(verbose=False).summary["step"] == 6
    assert training_pid(folder) is None


def test_a_run_folder_is_trained_by_one_process_at_a_time(tmp_path, word_file):
    """While a process trains a folder, another training of it (a resume from a second terminal, from the
    workspace) is refused in one line naming that process; once it lets go, however it ended, the folder trains."""
    from makemore.runfolder import FolderLock, training_pid

    settings = dict(n_embd=8, n_hidden=16, steps=30, eval_every=10, checkpoint_every=0)
    folder = tmp_path / "run"

    def press(trainer, event):
        if event == "step" and trainer.step == 12:
            assert training_pid(folder) == os.getpid()  # held while it trains
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        makemore.train(word_file, out=folder, verbose=False, callbacks=[press], **settings)
    assert training_pid(folder) is None  # let go though the training raised
    other = FolderLock(folder)  # another process's training, as the lock sees it: another open file
    other.acquire()
    try:
        assert training_pid(folder) == os.getpid()
        assert_one_line_error(cli("train", "--resume", folder, "--samples", 0),
                              f"process {os.getpid()} is training this run")
        with pytest.raises(makemore.UserError, match="is training this run"):
            makemore.resume(folder)
    finally:
        other.release()
    assert cli("train", "--resume", folder, "--samples", 0).returncode == 0


def test_a_status_probe_does_not_refuse_a_training(tmp_path):
    """training_pid() (the workspace's status) takes the lock shared for an instant: a training that starts in that
    instant waits it out instead of being refused as if another process trained the folder."""
    import fcntl
    import threading

    from makemore.runfolder import LOCK, FolderLock

    folder = tmp_path / "run"
    folder.mkdir()
    probe = open(folder / LOCK, "a+")
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # the probe, caught holding it
    threading.Timer(0.03, probe.close).start()
    lock = FolderLock(folder)
    lock.acquire()
    assert lock.file is not None
    lock.release()


def test_a_file_system_without_locks_trains_unlocked(tmp_path, monkeypatch):
    """flock failing for want of locks (ENOLCK, some NFS) is not another process training: the run goes on."""
    import errno

    from makemore import runfolder

    def no_locks(file, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runfolder.fcntl, "flock", no_locks)
    lock = runfolder.FolderLock(tmp_path / "run")
    lock.acquire()
    assert lock.file is None and runfolder.training_pid(tmp_path / "run") is None


def test_sigint_stops_after_the_step_with_a_checkpoint(tmp_path, word_file):
    """Ctrl-C in the middle of a training (the library's path, in this process): the run stops after that step with
    a checkpoint of it, raising a KeyboardInterrupt that says which signal; resumed, it ends as the whole run."""
    settings = dict(n_embd=8, n_hidden=16, steps=60, eval_every=60, checkpoint_every=0)
    whole = makemore.train(word_file, out=tmp_path / "whole", verbose=False, **settings)

    def press(trainer, event):
        if event == "step" and trainer.step == 25:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)  # Python's, or SIG_IGN where the tests run in a background job
    with pytest.raises(KeyboardInterrupt) as stopped:
        makemore.train(word_file, out=tmp_path / "stopped", verbose=False, callbacks=[press], **settings)
    assert stopped.value.why == "SIGINT" and load_run(tmp_path / "stopped").state["step"] == 25
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    resumed = makemore.resume(tmp_path / "stopped").run(verbose=False)
    assert resumed.evaluate("val") == whole.evaluate("val") and same_weights(tmp_path / "whole", tmp_path / "stopped")


def test_a_checkpoint_between_evaluations_resumes_exactly(tmp_path):
    """Checkpoints by time at steps that are neither evaluations nor logs: the losses since the last log are in
    the checkpoint, so a resumed run logs and ends as the uninterrupted one did."""
    cfg = makemore.TrainConfig(steps=50, batch_size=16, eval_every=25, log_every=10, device="cpu",
                               optimizer="adamw", lr=0.01, checkpoint_every=1e-9)  # after every step
    whole = train_into(tmp_path / "whole", make_trainer(CORPUS, "gru", dict(n_embd=8, n_hidden=16, dropout=0.2), cfg), "gru")
    trainer = make_trainer(CORPUS, "gru", dict(n_embd=8, n_hidden=16, dropout=0.2), cfg)
    assert train_into(tmp_path / "killed", trainer, "gru", kill_at=33) is None
    assert load_run(tmp_path / "killed").state["step"] == 32 and len(load_run(tmp_path / "killed").state["pending"]) == 2
    from conftest import resumed

    trainer = train_into(tmp_path / "killed", resumed(tmp_path / "killed"), "gru")
    untimed = lambda log: {k: v for k, v in log.items() if k != "time"}  # noqa: E731
    assert trainer.last_eval == whole.last_eval and untimed(trainer.last_log) == untimed(whole.last_log)
    assert same_weights(tmp_path / "whole", tmp_path / "killed")


# ----------------------------------------------------------------------------- divergence


def test_a_diverged_run_stops_with_one_line_and_keeps_its_last_finite_checkpoint(tmp_path):
    cfg = makemore.TrainConfig(steps=60, batch_size=16, eval_every=20, log_every=5, device="cpu", optimizer="adamw",
                               lr=0.01, checkpoint_every=0)
    trainer = make_trainer(CORPUS, "gru", dict(n_embd=8, n_hidden=16), cfg)

    def poison(t, event):  # after the checkpoint of step 20, the weights stop being numbers
        if event == "step" and t.step == 27:
            with torch.no_grad():
                t.model.embedding.weight.fill_(float("nan"))

    trainer.add_callback(poison)
    with pytest.raises(makemore.ConfigError, match="lr: the training diverged: the loss was nan by step 30"):
        train_into(tmp_path, trainer, "gru")
    run = load_run(tmp_path)
    assert run.state["step"] == 20 and all(v.isfinite().all() for v in run.state["model"].values() if v.is_floating_point())
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        strict_json(line)
    strict_json((tmp_path / "summary.json").read_text())


def test_lr_1e30_is_one_line_and_exit_2(tmp_path, word_file):
    # one network (the default gives this small list several): no evaluation before it diverges
    result = cli("train", word_file, *FLAGS, "--lr", 1e30, "--networks", 1, "--steps", 50, "--log-every", 10,
                 "--out", tmp_path / "r")
    assert_error_after_the_bar(result, "--lr: the training diverged: the loss was ", " by step ", "no checkpoint was written")
    for name in ("config.json", "metrics.jsonl"):
        for line in (tmp_path / "r" / name).read_text().splitlines() if name.endswith("jsonl") else \
                [(tmp_path / "r" / name).read_text()]:
            strict_json(line)


def test_a_model_gone_wrong_never_gives_a_name_below_min_len(tmp_path):
    """NaN logits end every word at once: min_len keeps such words out; and a run whose kept weights are not
    finite is refused when loaded."""
    model = build("gru")
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    rows = generate_jobs(model, VOCAB, [Job(50, Options(min_len=2, max_len=20).check(VOCAB),
                                            torch.Generator().manual_seed(0))])[0]
    assert all(r is None or len(r[0]) >= 2 for r in rows)
    from makemore import checkpoint

    tmp_path.mkdir(exist_ok=True)
    checkpoint.save(tmp_path / "model.pt", checkpoint.state("gru", model, CORPUS, makemore.TrainConfig()))
    with pytest.raises(makemore.UserError, match="its weights are not finite numbers"):
        load_run(tmp_path)


# ----------------------------------------------------------------------------- bounds


def test_a_huge_item_is_refused_with_its_line(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("\n".join(make_items(300)[:150] + ["x" * 2**20] + make_items(300)[150:]) + "\n")
    assert_one_line_error(cli("train", path, "--out", tmp_path / "r"),
                          f"{path}:151: an item of 1,048,576 characters; an item may have at most {MAX_ITEM:,}")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_sampling_a_run_of_the_longest_items_stays_within_a_fixed_memory(tmp_path):
    """Items of MAX_ITEM characters: the default bound (twice the longest, at most 1,000) and the batches keep
    the sampling process's peak memory, measured by getrusage, under a fixed bound."""
    items = make_items(200) + ["".join(random.Random(i).choice("abcdefgh") for _ in range(MAX_ITEM)) for i in range(3)]
    path = tmp_path / "list.txt"
    path.write_text("\n".join(items) + "\n")
    assert cli("train", path, "--model", "gru", "--n-embd", 8, "--n-hidden", 16, "--steps", 5, "--out",
               tmp_path / "r", "--samples", 0).returncode == 0
    code = ("import resource, makemore; run = makemore.load(%r); "
            "names = run.generate(2000, seed=0, temperature=3.0); "
            "print(len(names), max(map(len, names)), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)") % str(tmp_path / "r")
    # Linux keeps a process's peak RSS across exec, and a forked child starts with its parent's resident pages: the
    # measuring process is forked from a small Python, not from this test's (which holds every model so far)
    hop = f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', {code!r}]))"
    out = subprocess.run([sys.executable, "-c", hop], capture_output=True, text=True, timeout=600)
    n, longest, rss_kb = map(int, out.stdout.split())
    assert n == 2000 and longest <= 1000
    assert rss_kb < 1_200_000, f"peak RSS {rss_kb / 1024:.0f} MB"


@pytest.mark.parametrize("args, fragment", [
    (["--steps", "99999999999999999999"], "--steps: expected an integer in (0, 1,000,000,000]"),
    (["--batch-size", "10000000"], "--batch-size: expected an integer in (0, 1,000,000]"),
    (["--n-hidden", "100000"], "--n-hidden: expected an integer in (0, 8,192]"),
])
def test_training_settings_have_upper_bounds(word_file, args, fragment):
    assert_one_line_error(cli("train", word_file, *args), fragment)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    path = folder / "list.txt"
    path.write_text("\n".join(make_items()) + "\n", encoding="utf-8")
    result = cli("train", path, "--model", "gru", "--n-embd", 8, "--n-hidden", 16, "--steps", 30, "--out",
                 folder / "run", "--samples", 0)
    assert result.returncode == 0, result.stderr
    return folder / "run"


@pytest.mark.parametrize("args, fragment", [
    (["-n", "99999999999999"], "-n/--num: expected an integer in (0, 1,000,000]"),
    (["--max-len", "10000000"], "--max-len: expected an integer in (0, 1,000]"),
    (["--prefix", "m" * 1001], "--prefix: 1,001 characters; at most 1,000"),
])
def test_sampling_has_upper_bounds(small_run, args, fragment):
    assert_one_line_error(cli("sample", small_run, *args), fragment)


def test_sample_streams_and_counts_the_names_it_shows(small_run, monkeypatch):
    """The names are printed as each round finds them (the Sampler keeps none of them), and the novelty line
    counts the names shown, not every name drawn to find them."""
    from makemore import draw

    kept = []
    take = draw.Sampler.take
    monkeypatch.setattr(draw.Sampler, "take", lambda self, results: (take(self, results), kept.append(len(self.shown))))
    result = cli("sample", small_run, "-n", 3, "--novel-only", "--seed", 1)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 4 and kept and max(kept) == 0
    names, novelty = result.stdout.splitlines()[:3], result.stdout.splitlines()[3]
    assert all(name and " *" not in name for name in names)
    assert novelty.startswith("novelty 100.0% (3 of 3 names are not in the training data; ") and " drawn " in novelty


def test_an_empty_name_is_never_given_by_default(small_run):
    names = makemore.load(small_run).generate(500, seed=0, temperature=3.0)
    assert len(names) == 500 and all(names)


# ----------------------------------------------------------------------------- run folders and the OS


def test_out_onto_a_killed_runs_folder_is_refused(tmp_path, word_file):
    folder = tmp_path / "partial"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "metrics.jsonl").write_text("")
    assert_one_line_error(cli("train", word_file, "--out", folder),
                          f"--out: {folder} already holds a run (config.json, metrics.jsonl)", "delete it")
    assert (folder / "config.json").read_text() == "{}"


def test_runs_lists_what_it_can_read_and_marks_the_rest(small_run, tmp_path):
    import shutil

    folder = tmp_path / "runs"
    shutil.copytree(small_run, folder / "good")
    shutil.copytree(small_run, folder / "no-config")
    (folder / "no-config" / "config.json").unlink()
    (folder / "broken").mkdir()
    (folder / "broken" / "summary.json").write_text("{not json")
    (folder / "not-a-run").mkdir()
    result = cli("runs", folder)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("good ") and len(lines) == 4
    assert any(line.startswith("no-config") and "(not read: not a run folder (no config.json))" in line for line in lines)
    assert any(line.startswith("broken") and "(not read: " in line for line in lines)


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path, word_file):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_error(cli("train", word_file, "--out", blocker / "run"), str(blocker / "run"))
    assert_one_line_error(cli("train", word_file, "--out", "/proc/makemore-run"), "/proc/makemore-run")


def test_a_full_disk_is_one_line_and_the_last_checkpoint_stays_whole(tmp_path, word_file, monkeypatch):
    """The disk fills after the first evaluation's checkpoint: the run ends with one line naming the file, and
    the checkpoint, metrics and summary written before are whole."""
    import errno

    from makemore import files

    real, saves = files.os.replace, []

    def replace(source, target):
        if str(target).endswith("model.pt"):
            saves.append(target)
            if len(saves) > 1:
                raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real(source, target)

    monkeypatch.setattr(files.os, "replace", replace)
    result = cli("train", word_file, *FLAGS, "--steps", 60, "--eval-every", 20, "--out", tmp_path / "r")
    assert_error_after_the_bar(result, f"{tmp_path / 'r' / 'model.pt'}: No space left on device")
    monkeypatch.undo()
    assert load_run(tmp_path / "r").state["step"] == 20
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]  # no half-written file left
    strict_json((tmp_path / "r" / "summary.json").read_text())


# ----------------------------------------------------------------------------- resume


def test_resume_applies_what_may_change_and_refuses_the_rest(tmp_path, word_file):
    run = tmp_path / "r"
    assert cli("train", word_file, *FLAGS, "--steps", 40, "--eval-every", 20, "--out", run).returncode == 0
    assert_one_line_error(cli("train", "--resume", run, "--lr", 5),
                          "--lr: cannot change as a run goes on", "only --steps, --time-limit, --patience")
    assert_one_line_error(cli("train", "--resume", run), "the run is complete (40 of 40 steps); more steps train it "
                                                         "further")
    result = cli("train", "--resume", run, "--steps", 60, "--samples", 0)
    assert result.returncode == 0, result.stderr
    assert f"resuming {run} at step 40 of 60; steps 60 (was 40)" in result.stdout
    assert load_run(run).state["step"] == 60 and load_run(run).train_config.steps == 60


def test_one_item_is_singular(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("solo\n")
    assert_one_line_error(cli("train", path), "has 1 item, but the 80/10/10")


def test_the_killed_harness_stops_at_its_step(tmp_path):
    cfg = makemore.TrainConfig(steps=30, batch_size=8, eval_every=10, device="cpu")
    trainer = make_trainer(CORPUS, "mlp", dict(block_size=3, n_embd=5, n_hidden=16), cfg)
    assert train_into(tmp_path, trainer, "mlp", kill_at=15) is None and trainer.step == 15
    assert issubclass(Killed, Exception)
