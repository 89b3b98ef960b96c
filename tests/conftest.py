"""What the tests share: the names data, a tiny corpus and tiny models of every family, the command line run in
this process or in a fresh one, and free ports.

Markers: slow (a test of several seconds or more), postgres (starts a PostgreSQL server), browser (drives
chromium). `pytest -m "not slow"` is a quick local run; CI runs everything.
"""

import contextlib
import functools
import io
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the lecture's literal notebook code, benchmarks/lecture_loop.py
SHARED_DATA = ROOT.parent / "shared" / "data"
if "MAKEMORE_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["MAKEMORE_DATA"] = str(SHARED_DATA)
if os.environ.get("PYTEST_XDIST_WORKER"):  # one process per core (pytest -n auto): one thread each, and in the
    os.environ["OMP_NUM_THREADS"] = "1"  # processes a test starts, so that the workers do not crowd each other out
    import torch

    torch.set_num_threads(1)
# torch and makemore are imported where they are used: pytest-xdist's controller loads this file and runs no test,
# and importing torch there held the workers' start back by 4 s (a one-test run: 10.5 s -> 6.2 s)


@pytest.fixture(autouse=True)
def keeps_torchs_threads():
    """A test that leaves torch on more threads than it found slows every later test of its worker: two workers
    of two threads each on two cores ran the lecture's equality tests 10x slower (87 s for 8)."""
    import torch

    threads = torch.get_num_threads()
    yield
    leaked = torch.get_num_threads()
    torch.set_num_threads(threads)
    assert leaked == threads, f"the test left torch on {leaked} threads, not {threads}"


@pytest.fixture(scope="session")
def names():
    """The names data set, from MAKEMORE_DATA (../shared/data in CI) or the download cache."""
    from makemore.errors import UserError
    from makemore.lists import read_source

    try:
        return read_source("names")
    except UserError as e:
        pytest.skip(f"names.txt is not available offline: {e}")


def make_items(n=120, seed=0):
    """Items with spaces, hyphens, accents and '.', as a user's own list might have."""
    rng = random.Random(seed)
    syllables = ["ma", "ri", "jo", "sé", "an", "ne", "lu", "cí", "pe", "dro", "ño", "el", "la", "st."]
    items = set()
    while len(items) < n:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.2:
            word += rng.choice([" ", "-", "."]) + "".join(rng.choice(syllables) for _ in range(rng.randint(1, 2)))
        items.add(word)
    return sorted(items)


@pytest.fixture(scope="session")
def two_lists(tmp_path_factory):
    """Two clearly different lists, for conditioning: soft has no k; every hard item starts and ends with k."""
    folder = tmp_path_factory.mktemp("two")
    soft, hard = folder / "soft.txt", folder / "hard.txt"
    soft.write_text("\n".join(w for w in make_items(150, seed=1) if "k" not in w) + "\n", encoding="utf-8")
    hard.write_text("\n".join("k" + w + "k" for w in make_items(150, seed=2)) + "\n", encoding="utf-8")
    return soft, hard


def write_word_file(folder) -> Path:
    """The list a user trains in the tests: make_items(), one per line, in a file whose name has a space."""
    path = folder / "my list.txt"
    path.write_text("\n".join(make_items()) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def word_file(tmp_path):
    return write_word_file(tmp_path)


# ----------------------------------------------------------------------------- tiny models of every family

@functools.cache
def tiny_corpus():
    """ITEMS, VOCAB, CORPUS: the tiny corpus the models are built on, made on first use."""
    from makemore.data import Corpus, Vocab

    items = make_items()
    vocab = Vocab.from_items(items)
    return {"ITEMS": items, "VOCAB": vocab, "CORPUS": Corpus("test", items, vocab)}


def __getattr__(name):  # from conftest import CORPUS, ... (pytest asks for hooks by name: they are not made here)
    if name not in ("ITEMS", "VOCAB", "CORPUS"):
        raise AttributeError(f"module 'conftest' has no attribute {name!r}")
    return tiny_corpus()[name]


TINY = {  # small but complete models of every registered family
    "bigram": {},
    "ngram": dict(block_size=3),
    "mlp": dict(block_size=3, n_embd=5, n_hidden=16),
    "hierarchical": dict(block_size=8, n_embd=6, n_hidden=16),
    "conv": dict(block_size=8, n_embd=6, n_hidden=16),
    "wavenet": dict(block_size=16, n_embd=8, n_skip=16),
    "rnn": dict(n_embd=8, n_hidden=16),
    "gru": dict(n_embd=8, n_hidden=16),
    "lstm": dict(n_embd=8, n_hidden=16, n_layers=2),
    "transformer": dict(block_size=16, n_embd=16, n_head=2, n_layers=2),
    "gru+ngram": dict(n_embd=8, n_hidden=16, ngram_context=2),
}


def build(name, **options):
    import torch

    from makemore import models

    config = models.make_config(name, vocab_size=tiny_corpus()["VOCAB"].size, **{**TINY[name], **options})
    return models.build(name, config, generator=torch.Generator().manual_seed(0))


def trained(name, steps=30, **options):
    import torch

    from makemore.config import TrainConfig
    from makemore.data import examples
    from makemore.train import Trainer

    model = build(name, **options)
    data = examples(model, tiny_corpus()["CORPUS"], "train")
    cfg = TrainConfig(steps=steps, batch_size=16, eval_every=10**9)
    Trainer(model, cfg, data, data, torch.Generator().manual_seed(0), torch.device("cpu")).run()
    return model.eval()


class Killed(Exception):
    """A SIGKILL's stand-in: raised from a callback, it ends the run with nothing after its last checkpoint saved."""


def train_into(folder, trainer, name: str, kill_at=None):
    """The one kill-and-resume harness: the trainer run to its end with its run folder written (by rank 0 under
    torchrun), or killed after step kill_at on every rank: the trainer, or None when killed. A trainer from
    resumed(folder) goes on in the same folder."""
    from makemore.runfolder import RunWriter

    if trainer.ranks.lead:
        writer = RunWriter(folder, "test", name, tiny_corpus()["CORPUS"], plot=False)
        writer.start(trainer)
        trainer.add_callback(writer)
    if kill_at:
        def kill(t, event):
            if t.step >= kill_at:
                raise Killed
        trainer.add_callback(kill)
    try:
        trainer.run()
    except Killed:
        return None
    return trainer


def resumed(folder, **changes):
    """A trainer that goes on from the folder's checkpoint, in a process whose random state is another's."""
    import torch

    from makemore.run import load_run
    from makemore.trainers import resume_trainer

    torch.manual_seed(1234)  # a resumed process starts with other random state: the checkpoint must restore it
    return resume_trainer(load_run(folder), changes)


# ----------------------------------------------------------------------------- the command line


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(*args) -> Result:
    """makemore's main() in this process, its output captured: the command line without a new interpreter."""
    from makemore.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


def run_cli(*args, cwd=None):
    """makemore as a user runs it: a fresh process, for real exit codes, signals and stderr."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "makemore", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM = "/usr/bin/chromium"


@contextlib.contextmanager
def serving(run, *flags):
    """makemore serve as a user starts it, on a free localhost port: its URL, then its process."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "makemore", "serve", str(run), "--port", str(port), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"makemore serve exited: {proc.stderr.read().decode()}")
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("makemore serve did not come up")
    try:
        yield url, proc
    finally:
        proc.terminate()
        proc.communicate(timeout=30)  # its pipes read to the end and closed
