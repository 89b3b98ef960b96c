"""Names of a shape (a pattern, a suffix, substrings) and far from the list: the automaton matches what Python's
re matches, every name given satisfies every control on every family, the exact path and the guided,
corrected path both draw from the model's conditional distribution (a chi-square test against plain sampling
filtered afterwards), and the edit-distance index answers as a scan of the list would."""

import collections
import random
import re
import time

import pytest
import torch

from makemore.data import Vocab
from makemore.distance import NearIndex, levenshtein
from makemore.draw import SHAPE_ROWS, Sampler, draw
from makemore.errors import ConfigError
from makemore.pattern import compile_pattern, intersect, shape
from makemore.sample import Job, Options, generate_jobs

from conftest import ITEMS, TINY, VOCAB, assert_one_line_error, cli, trained

SMALL = Vocab(sorted(set("abcdekmnorst -")))


@pytest.mark.parametrize("pattern", ["ma.*", "(ab|c)*d[a-e]+", "k?[aeo]{2,3}s?", ".*ta", "[^ a]+", "a|b|", "(a-b)?\\s?c",
                                     "[a-c]*(rr|ss){1,2}$", "^.{0,3}$"])
def test_the_automaton_matches_what_re_matches(pattern):
    automaton = compile_pattern(pattern, SMALL)
    rng = random.Random(0)
    words = [""] + ["".join(rng.choice("abcdmkrst -") for _ in range(rng.randint(1, 7))) for _ in range(3000)]
    for word in words:
        assert automaton.matches(SMALL.encode(word)) == bool(re.fullmatch(pattern, word)), word


def test_shapes_intersect_and_bad_patterns_name_the_construct():
    both = shape(SMALL, pattern="m.*", ends_with="ta", contains=("ss",))
    assert both.matches(SMALL.encode("mssta")) and not both.matches(SMALL.encode("msta"))
    assert intersect(compile_pattern("a.*", SMALL), compile_pattern(".*b", SMALL)).matches(SMALL.encode("acb"))
    for pattern, fragment in [("(a)\\1", "a backreference"), ("(?=a)b", "a lookahead"), ("(?i)ab", "inline flags"),
                              ("a{500}", "a repeat of more than 100"), ("[", "not a regular expression"),
                              ("zzz", "no name in the run's vocabulary can match it")]:
        with pytest.raises(ConfigError, match=f"pattern: .*{re.escape(fragment)}"):
            shape(SMALL, pattern=pattern)
    with pytest.raises(ConfigError, match="ends_with: character 'Z' is not in the model's vocabulary"):
        shape(SMALL, ends_with="Z")


@pytest.mark.parametrize("name", list(TINY))
def test_every_control_on_every_family_gives_only_names_that_satisfy_it(name):
    model = trained(name, steps=60)
    known = set(ITEMS)
    controls = dict(ends_with="a", contains=("ma",), pattern="[^ ]*[aeiou][^ ]*")
    plain = Job(300, Options(max_len=30, ends_with="a").check(VOCAB), torch.Generator().manual_seed(1))
    names = [r[0] for r in generate_jobs(model, VOCAB, [plain])[0] if r]  # drawn, and dropped where they miss
    assert names and all(n.endswith("a") for n in names)
    for guide in (None, True):  # as the first round's rate says, and guided from the start
        sampler = Sampler(30, Options(max_len=30, **controls).check(VOCAB), torch.Generator().manual_seed(1),
                          guide=guide, seconds=2)
        names = draw(model, VOCAB, sampler).names
        assert names, (name, guide)
        assert all(n.endswith("a") and "ma" in n and re.fullmatch(controls["pattern"], n) for n in names)
    index = NearIndex(known, 1)
    far = Sampler(20, Options(max_len=30).check(VOCAB), torch.Generator().manual_seed(2), known,
                  far=lambda w: not index.near(w), seconds=2)
    drawn = draw(model, VOCAB, far)
    assert drawn.names and all(min(levenshtein(n, k) for k in known) >= 2 for n in drawn.names)


def frequencies(names, keep=None):
    counts = collections.Counter(names)
    return counts if keep is None else {k: counts.get(k, 0) for k in keep}


def chi_square_p(a: dict, b: dict) -> float:
    """The p-value that two samples of names come from one distribution: a 2 x K contingency table of the
    names both saw at least 5 times in all (the rest pooled), its chi-square statistic, and the chi-square
    survival function (the regularised upper incomplete gamma)."""
    names = [k for k in set(a) | set(b) if a.get(k, 0) + b.get(k, 0) >= 10]
    rows = [[a.get(k, 0) for k in names], [b.get(k, 0) for k in names]]
    rows[0].append(sum(a.values()) - sum(rows[0]))
    rows[1].append(sum(b.values()) - sum(rows[1]))
    table = torch.tensor(rows, dtype=torch.float64)
    table = table[:, table.sum(0) > 0]
    expected = table.sum(1, keepdim=True) * table.sum(0, keepdim=True) / table.sum()
    stat = ((table - expected) ** 2 / expected).sum()
    dof = table.shape[1] - 1
    return torch.special.gammaincc(torch.tensor(dof / 2.0, dtype=torch.float64), stat / 2).item()


@pytest.fixture(scope="module")
def reference():
    """A model, a shape that about a tenth of its names have (ends with 'a'), and plain sampling filtered
    afterwards: the reference frequencies of the conditional distribution."""
    torch.manual_seed(0)
    model = trained("gru", steps=300)
    plain = Job(60_000, Options(max_len=20).check(VOCAB), torch.Generator().manual_seed(10))
    names = [r[0] for r in generate_jobs(model, VOCAB, [plain])[0] if r]
    matching = [n for n in names if n.endswith("a")]
    assert 0.05 < len(matching) / len(names) < 0.2  # near a tenth
    return model, frequencies(matching)


def test_the_exact_path_draws_from_the_conditional(reference):
    model, expected = reference
    sampler = Sampler(3000, Options(max_len=20, ends_with="a").check(VOCAB), torch.Generator().manual_seed(11))
    drawn = draw(model, VOCAB, sampler)
    assert drawn.guidance["mode"] == "exact" and len(drawn.names) == 3000
    assert chi_square_p(expected, frequencies(drawn.names)) > 0.001


def test_the_guided_path_corrected_draws_from_the_conditional_and_uncorrected_does_not(reference):
    model, expected = reference
    # 1,500 names resampled from 15,000 weighted candidates: nearly independent draws, as the test assumes
    sampler = Sampler(1500, Options(max_len=20, ends_with="a").check(VOCAB), torch.Generator().manual_seed(12),
                      guide=True)
    drawn = draw(model, VOCAB, sampler)
    assert drawn.guidance["mode"] == "guided" and drawn.guidance["corrected"] and len(drawn.names) == 1500
    assert chi_square_p(expected, frequencies(drawn.names)) > 0.001
    assert drawn.guidance["effective"] >= 10 and 0.05 < drawn.guidance["probability"] < 0.2  # near a tenth, as drawn
    raw = Job(3000, Options(max_len=20, ends_with="a", guided=True).check(VOCAB), torch.Generator().manual_seed(13))
    uncorrected = [r[0] for r in generate_jobs(model, VOCAB, [raw])[0] if r]
    assert chi_square_p(expected, frequencies(uncorrected)) < 1e-6  # the test can tell a biased sampler


def test_a_shapes_probability_on_too_few_effective_candidates_is_not_given():
    """The estimate is the rows' mean importance weight: on a handful of effective candidates it is not given."""
    sampler = Sampler(10, Options(max_len=20, ends_with="a").check(VOCAB), torch.Generator().manual_seed(0))
    for effective, given in ((9.9, False), (10.0, True)):
        sampler.guided = {"acceptance": 0.0, "found": 0, "tried": 2000, "candidates": 500, "effective": effective,
                          "rows": 500, "weight": 0.5}
        assert (sampler.result().guidance["probability"] == 0.001) if given else \
            sampler.result().guidance["probability"] is None


def test_the_index_answers_as_a_scan_would():
    rng = random.Random(3)
    for _ in range(5):
        items = ["".join(rng.choice("abcd") for _ in range(rng.randint(1, 7))) for _ in range(80)]
        queries = ["".join(rng.choice("abcde") for _ in range(rng.randint(0, 8))) for _ in range(400)]
        for radius in (0, 1, 2):
            index = NearIndex(items, radius)
            assert [index.near(q) for q in queries] == [any(levenshtein(q, i) <= radius for i in items) for q in queries]


def test_an_impossible_shape_ends_in_bounded_time_and_says_so():
    model = trained("gru", steps=60)
    sampler = Sampler(10, Options(max_len=12, pattern="a{20}").check(VOCAB), torch.Generator().manual_seed(0),
                      seconds=1.0)
    start = time.monotonic()
    drawn = draw(model, VOCAB, sampler)
    assert time.monotonic() - start < 30 and not drawn.complete and drawn.names == []


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    data = folder / "words.txt"
    data.write_text("\n".join(ITEMS) + "\n", encoding="utf-8")
    assert cli("train", data, "--model", "gru", "--n-embd", 8, "--n-hidden", 32, "--steps", 200, "--optimizer",
               "adamw", "--lr", 0.01, "--out", folder / "run", "--samples", 0).returncode == 0
    return folder / "run"


def test_the_command_line_takes_the_controls_and_names_bad_ones(run_folder):
    result = cli("sample", run_folder, "-n", 10, "--ends-with", "a", "--contains", "ma", "--contains", "r",
                 "--min-distance", 2, "--seed", 1)
    assert result.returncode == 0, result.stderr
    *names, last = result.stdout.splitlines()
    assert len(names) == 10 and all(n.endswith("a") and "ma" in n and "r" in n for n in names)
    rows = re.search(r"; ([\d,]+) drawn in \d+ rounds?\)$", last)  # every row, not only those that ended or fit
    assert rows and int(rows[1].replace(",", "")) >= SHAPE_ROWS, last
    assert_one_line_error(cli("sample", run_folder, "--pattern", "(a)\\1"), "--pattern: a backreference")
    assert_one_line_error(cli("sample", run_folder, "--pattern", "[a"), "--pattern: not a regular expression")
    assert_one_line_error(cli("sample", run_folder, "--ends-with", "Z"), "--ends-with: character 'Z' is not in")
    assert_one_line_error(cli("sample", run_folder, "--min-distance", 4), "--min-distance: expected an integer in [0, 3]")


def test_the_http_api_takes_the_controls_and_names_bad_ones(run_folder):
    from fastapi.testclient import TestClient

    from makemore.serve import create_app

    client = TestClient(create_app(run_folder))
    body = client.post("/api/generate", json={"n": 8, "ends_with": "a", "contains": ["ma"], "pattern": "m.*",
                                              "min_distance": 1, "seed": 3}).json()
    assert len(body["names"]) == 8 and body["guidance"]["mode"] in ("exact", "guided")
    assert all(x["name"].startswith("m") and x["name"].endswith("a") and "ma" in x["name"] for x in body["names"])
    for request, field in [({"pattern": "(?<=a)b"}, "pattern"), ({"ends_with": "Z"}, "ends_with"),
                           ({"min_distance": 7}, "min_distance"), ({"contains": ["Q"]}, "contains")]:
        r = client.post("/api/generate", json=request)
        assert r.status_code == 422 and r.json()["error"].startswith(f"{field}: "), r.text
