import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the lecture's literal notebook code, benchmarks/lecture_loop.py
SHARED_DATA = ROOT.parent / "shared" / "data"
if "MAKEMORE_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["MAKEMORE_DATA"] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def names():
    """The names data set, from MAKEMORE_DATA (../shared/data in CI) or the download cache."""
    from makemore.data import read_source
    from makemore.errors import UserError

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


@pytest.fixture
def word_file(tmp_path):
    path = tmp_path / "my list.txt"
    path.write_text("\n".join(make_items()) + "\n", encoding="utf-8")
    return path


def run_cli(*args, cwd=None):
    """makemore as a user runs it: a fresh process, so exit codes and stderr are real."""
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
