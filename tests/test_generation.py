"""Generation's controls on every model family (top-p, lengths, exclude, unique, one bound for every filter), a
batch of requests equal to each alone, scores equal to the forward loss, and conditioning on every sequence
family; then the same controls through the command line and the Python API."""

import functools

import pytest
import torch

import makemore
from makemore import models, sample
from makemore.config import TrainConfig
from makemore.data import IGNORE, Corpus, build_sequences, build_windows
from makemore.draw import Sampler, draw
from makemore.errors import ConfigError
from makemore.sample import Job, Options, generate, generate_jobs, has_cache, next_token
from makemore.score import score
from makemore.trainers import make_trainer

from conftest import ITEMS, TINY, VOCAB, assert_one_line_error, build, cli, make_items, trained

FAMILIES = list(TINY)
CONDITIONED = ["conv", "wavenet", "rnn", "gru", "lstm", "transformer"]


@functools.cache
def model_of(name):
    torch.manual_seed(0)  # torch.nn layers (the RNNs') initialise from the global RNG
    return trained(name, steps=60)


def rows(model, n, seed, logprobs=False, **options):
    """generate_jobs' rows for one job: (word, logprob) or None where the word reached max_len."""
    options = Options(**{"max_len": 30, **options}).check(VOCAB)
    return generate_jobs(model, VOCAB, [Job(n, options, torch.Generator().manual_seed(seed))], logprobs=logprobs)[0]


def words(model, n, seed, **options):
    return [r[0] for r in rows(model, n, seed, **options) if r]


# ----------------------------------------------------------------------------- every control, every family


def test_top_p_keeps_the_fewest_likeliest_tokens_that_reach_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).repeat(4000, 1)
    g = torch.Generator().manual_seed(0)
    for top_p, kept in [(0.5, {0}), (0.7, {0, 1}), (0.81, {0, 1, 2}), (1.0, {0, 1, 2, 3})]:
        assert set(next_token(probs.log(), 1.0, None, g, top_p=top_p)[:, 0].tolist()) == kept, top_p
    assert set(next_token(probs.log(), 1.0, 1, g, top_p=0.9)[:, 0].tolist()) == {0}  # top-k first, then top-p
    # per row: a nan is no limit
    per_row = torch.tensor([[0.5], [float("nan")]]).repeat(2000, 1)
    ix = next_token(probs[:4000].log(), 1.0, None, g, top_p=per_row)[:, 0]
    assert set(ix[0::2].tolist()) == {0} and set(ix[1::2].tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("name", FAMILIES)
def test_top_p(name):
    model = model_of(name)
    assert words(model, 200, 1, top_p=1.0) == words(model, 200, 1)  # all of the probability: no limit
    greedy = words(model, 50, 2, top_k=1)
    assert words(model, 50, 2, top_p=1e-6) == greedy  # the likeliest token alone (or those tied with it)
    def per_char(**options):  # the mean of the words' log-probability per character, under the model
        made = [r for r in rows(model, 300, 3, logprobs=True, **options) if r]
        return sum(lp / (len(w) + 1) for w, lp in made) / len(made)

    assert per_char(top_p=0.5) > per_char() + 0.1  # the nucleus: likelier characters only


@pytest.mark.parametrize("name", FAMILIES)
def test_lengths_are_kept_and_a_long_name_is_dropped_not_cut(name):
    model = model_of(name)
    free = rows(model, 400, 4, temperature=2.0, prefix="ma")
    lengths = [len(r[0]) for r in free if r]
    assert min(lengths) < 4 and max(lengths) > 8  # without limits, names of every length
    bounded = rows(model, 400, 4, temperature=2.0, prefix="ma", max_len=8)
    for unbounded, kept in zip(free, bounded):
        if unbounded is not None and len(unbounded[0]) <= 8:
            assert kept == unbounded  # the same draws, up to where a row reached max_len
        else:
            assert kept is None  # it reached 8 characters without ending: dropped, not cut to 8
    names = words(model, 400, 5, temperature=2.0, prefix="ma", min_len=4, max_len=8)
    assert names and all(4 <= len(w) <= 8 and w.startswith("ma") for w in names)


@pytest.mark.parametrize("name", FAMILIES)
def test_exclude_unique_and_novel_only_draw_again_until_n_pass(name):
    model = model_of(name)
    options = Options(temperature=1.5, max_len=30)

    def sampler(exclude=frozenset()):
        return Sampler(40, options, torch.Generator().manual_seed(6), known=set(ITEMS), novel_only=True,
                       exclude=exclude, unique=True)

    first_round = sampler().next_job()
    first = [r[0] for r in generate_jobs(model, VOCAB, [first_round])[0] if r]  # what its first round will give
    result = draw(model, VOCAB, sampler(frozenset(first)))
    assert result.complete and len(result.names) == 40 and result.rounds > 1  # its first round was all excluded
    assert len(set(result.names)) == 40
    assert not set(result.names) & (set(first) | set(ITEMS))


@pytest.mark.parametrize("name", FAMILIES)
def test_an_impossible_request_ends_with_what_was_found(name):
    model = model_of(name)
    three = Options(prefix="ma", min_len=3, max_len=3)  # fewer such names than the vocabulary, asked for 100 once each
    result = draw(model, VOCAB, Sampler(100, three, torch.Generator().manual_seed(0), unique=True, rounds=8))
    assert not result.complete and result.rounds == 8  # its cap (ROUNDS unless given): rounds that could find none
    assert 0 < len(result.names) < VOCAB.size and all(len(w) == 3 and w.startswith("ma") for w in result.names)
    timed = Sampler(100, three, torch.Generator().manual_seed(0), unique=True, seconds=0)
    assert draw(model, VOCAB, timed).rounds == 1  # the time was spent before the second round


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("max_rows", [sample.MAX_ROWS, 60, 45])  # one batch; several; the 50-row job in two pieces
def test_a_batch_of_jobs_gives_each_job_what_it_gives_alone(name, max_rows, monkeypatch):
    monkeypatch.setattr(sample, "MAX_ROWS", max_rows)
    model = model_of(name)
    jobs = [(50, Options(temperature=0.7, top_k=5, max_len=30), 1),
            (30, Options(prefix="ma", min_len=4, max_len=9), 2),
            (40, Options(top_p=0.8, temperature=1.3, max_len=30), 3),
            (1, Options(prefix="jo", max_len=6), 4),
            (25, Options(prefix="ann", top_k=3, top_p=0.9, max_len=30), 5)]
    together = generate_jobs(model, VOCAB, [Job(n, o, torch.Generator().manual_seed(s)) for n, o, s in jobs],
                             logprobs=True)
    alone = [generate_jobs(model, VOCAB, [Job(n, o, torch.Generator().manual_seed(s))], logprobs=True)[0]
             for n, o, s in jobs]
    assert [[r and r[0] for r in job] for job in together] == [[r and r[0] for r in job] for job in alone]
    for a, b in zip(together, alone):
        assert [r and r[1] for r in a] == pytest.approx([r and r[1] for r in b], abs=1e-6)


class CountingStep:
    """A step of generation that records how many rows each call ran."""

    def __init__(self, step):
        self.step, self.rows = step, []

    def select(self, rows):
        self.step.select(rows)

    def __call__(self, tokens):
        self.rows.append(len(tokens))
        return self.step(tokens)


@pytest.mark.parametrize("name", FAMILIES + [f"{n}-conditioned" for n in CONDITIONED])
def test_rows_of_one_history_step_once_and_give_what_stepping_each_row_gives(name, monkeypatch):
    """Cached generation steps once per distinct history (class and characters so far) while rows share one;
    naive generation, the reference, steps every row: the same words and log-probabilities."""
    family, _, conditioned = name.partition("-")
    model = build(family, n_classes=3).eval() if conditioned else model_of(family)
    classes = [0, 2, 0, 1] if conditioned else [None] * 4
    options = [dict(), dict(prefix="ma", temperature=0.8), dict(top_k=4), dict(prefix="ma")]
    steps, making = [], []
    make_step = sample.make_step

    def counted(*args, **kwargs):  # the step decode makes; a mixture's members' steps are inside it
        making.append(1)
        try:
            step = make_step(*args, **kwargs)
        finally:
            making.pop()
        if not making:
            steps.append(CountingStep(step))
            return steps[-1]
        return step

    monkeypatch.setattr(sample, "make_step", counted)
    made = {}
    for cached in (True, False):
        jobs = [Job(n, Options(max_len=30, cls=c, **o).check(VOCAB), torch.Generator().manual_seed(seed))
                for n, c, o, seed in zip([60, 40, 30, 20], classes, options, [1, 2, 3, 4])]
        made[cached] = generate_jobs(model, VOCAB, jobs, cached=cached, logprobs=True)
    assert [[r and r[0] for r in job] for job in made[True]] == [[r and r[0] for r in job] for job in made[False]]
    for a, b in zip(*made.values()):
        assert [r and r[1] for r in a] == pytest.approx([r and r[1] for r in b], abs=1e-6)
    shared, each = steps
    assert shared.rows[0] == len(set(classes)) and each.rows[0] == 150  # the first step: one history a class
    assert sum(shared.rows) < sum(each.rows)


def test_jobs_are_packed_whole_into_batches_and_one_too_large_is_cut(monkeypatch):
    monkeypatch.setattr(sample, "MAX_ROWS", 10)
    options = Options(max_len=30)
    jobs = [Job(n, options) for n in (4, 5, 2, 23, 3, 10)]
    batches = sample.batches_of(jobs)
    assert [[(i, job.rows) for i, job in batch] for batch in batches] == [
        [(0, 4), (1, 5)], [(2, 2)], [(3, 10)], [(3, 10)], [(3, 3)], [(4, 3)], [(5, 10)]]
    assert sample.batches_of([]) == []


@pytest.mark.parametrize("name", ["gru", "transformer", "hierarchical"])
def test_a_job_over_max_rows_is_decoded_in_turn_with_its_generator_going_on(name, monkeypatch):
    """More rows than MAX_ROWS (a million names from the command line) are decoded a batch at a time, so memory
    stays bounded; the pieces draw from the job's generator in turn, so the words are those of the pieces."""
    model = model_of(name)
    g = torch.Generator().manual_seed(7)
    options = Options(max_len=30).check(VOCAB)
    pieces = [r for n in (16, 16, 8) for r in generate_jobs(model, VOCAB, [Job(n, options, g)], logprobs=True)[0]]
    monkeypatch.setattr(sample, "MAX_ROWS", 16)
    cut = rows(model, 40, 7, logprobs=True)
    assert len(cut) == 40 and cut == pieces
    assert rows(model, 40, 7, logprobs=True) == cut  # the same seed, the same words


@pytest.mark.parametrize("name", ["transformer", "gru", "lstm", "rnn", "wavenet", "conv", "hierarchical"])
def test_every_sequence_family_and_the_tree_generate_with_a_cache(name):
    assert has_cache(model_of(name))


def test_bad_sampling_options_name_the_field():
    for options, fragment in [(dict(top_p=0.0), "top_p: "), (dict(top_p=1.5), "top_p: "),
                              (dict(min_len=-1), "min_len: "), (dict(max_len=0), "max_len: "),
                              (dict(min_len=6, max_len=5), "max_len: 5 is below min_len (6)"),
                              (dict(prefix="mama", max_len=3), "max_len: 3 is below min_len")]:
        with pytest.raises(ConfigError) as e:
            Options(**options).check(VOCAB)
        assert fragment in str(e.value), (options, str(e.value))


# ----------------------------------------------------------------------------- scores


@pytest.mark.parametrize("name", FAMILIES)
def test_score_equals_the_forward_loss(name):
    model = model_of(name)
    some = [w for w in ITEMS if len(w) < 15][:40]  # the tiny Transformer sees 16 positions
    scores = score(model, VOCAB, some)
    with torch.no_grad():
        if model.windowed:
            loss = model(*build_windows(some, VOCAB, model.config.block_size))[1]
        else:
            X, Y = build_sequences(some, VOCAB)
            loss = model(X, Y)[1]
            assert (Y != IGNORE).sum() == sum(len(w) + 1 for w in some)
    targets = sum(len(w) + 1 for w in some)
    assert -sum(s.logprob for s in scores) / targets == pytest.approx(loss.item(), abs=1e-5)
    for s in scores:
        assert len(s.surprisal) == len(s.word) + 1  # each character, then the end
        assert sum(s.surprisal) == pytest.approx(-s.logprob, abs=1e-9)
        assert s.mean == pytest.approx(s.logprob / (len(s.word) + 1), abs=1e-9)


def test_a_generated_words_score_is_its_logprob_while_generating():
    model = model_of("transformer")
    pairs = generate(model, VOCAB, 40, max_len=14, prefix="lu", temperature=1.3, logprobs=True,
                     generator=torch.Generator().manual_seed(8))
    scores = score(model, VOCAB, [w for w, _ in pairs])
    assert [s.logprob for s in scores] == pytest.approx([lp for _, lp in pairs], abs=1e-4)


def test_scoring_a_character_outside_the_vocabulary_names_it():
    with pytest.raises(ConfigError, match="words: character 'Q' of 'maQ' is not in the model's vocabulary"):
        score(model_of("gru"), VOCAB, ["maria", "maQ"])


# ----------------------------------------------------------------------------- conditioning

def test_the_sequence_families_take_a_class():
    assert sorted(n for n in models.MODELS if models.conditioned(n)) == sorted(CONDITIONED)


@pytest.mark.slow
@pytest.mark.parametrize("name", CONDITIONED)
def test_a_conditioned_model_generates_each_class_in_its_style(name, two_lists):
    corpus = Corpus.load_many(two_lists, condition="file")
    torch.manual_seed(0)
    options = {**TINY[name], "block_size": 32} if name == "transformer" else TINY[name]
    trainer = make_trainer(corpus, name, options, TrainConfig(steps=300, batch_size=32, optimizer="adamw", lr=0.01,
                                                              eval_every=10**9, device="cpu"))
    trainer.run()
    model = trainer.model.eval()
    assert model.config.n_classes == 2
    made = {cls: generate(model, corpus.vocab, 100, max_len=40, cls=corpus.classes.index(cls),
                          generator=torch.Generator().manual_seed(1)) for cls in ("soft", "hard")}
    hard = sum(w.startswith("k") and w.endswith("k") and len(w) > 1 for w in made["hard"]) / len(made["hard"])
    soft = sum("k" in w for w in made["soft"]) / len(made["soft"])
    assert hard > 0.8 and soft < 0.1, (hard, soft, made)


# ----------------------------------------------------------------------------- the command line and the API


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gen")
    data = folder / "words.txt"
    data.write_text("\n".join(make_items(300)) + "\n", encoding="utf-8")
    result = cli("train", data, "--model", "gru", "--n-embd", 8, "--n-hidden", 32, "--steps", 300, "--lr", 0.01,
                 "--optimizer", "adamw", "--batch-size", 32, "--out", folder / "run", "--samples", 0)
    assert result.returncode == 0, result.stderr
    return folder / "run"


def test_sample_flags(run_folder, tmp_path):
    first = cli("sample", run_folder, "-n", 20, "--seed", 1, "--min-len", 4, "--max-len", 8, "--top-p", 0.9)
    assert first.returncode == 0, first.stderr
    names = [n.removesuffix(" *") for n in first.stdout.splitlines()[:-1]]
    assert len(names) == 20 and all(4 <= len(n) <= 8 for n in names)
    excluded = tmp_path / "no.txt"
    excluded.write_text("\n".join(names[:10]) + "\n", encoding="utf-8")
    again = cli("sample", run_folder, "-n", 20, "--seed", 1, "--min-len", 4, "--max-len", 8, "--top-p", 0.9,
                "--exclude", excluded, "--unique")
    assert again.returncode == 0, again.stderr
    names = [n.removesuffix(" *") for n in again.stdout.splitlines()[:-1]]
    assert len(names) == len(set(names)) == 20
    assert not set(names) & set(excluded.read_text(encoding="utf-8").split("\n"))


def test_an_impossible_sample_says_what_it_found(run_folder):
    # Few draws pass (the first round of 158 finds none for most seeds): the request ends at its 100 rounds (half
    # a second here), long before the default 5 seconds, so a slow machine finds the same names
    result = cli("sample", run_folder, "-n", 100, "--prefix", "ma", "--min-len", 3, "--max-len", 3, "--unique",
                 "--seed", 0)
    assert result.returncode == 0
    names = [n.removesuffix(" *") for n in result.stdout.splitlines()[:-1]]
    assert 0 < len(names) < 30 and all(len(n) == 3 for n in names), names  # ma + a character, each once
    assert f"found {len(names)} of 100 names that pass the filters" in result.stderr


@pytest.mark.parametrize("flags, fragment", [
    (("--top-p", 0), "--top-p: expected a number in (0, 1], got '0'"),
    (("--top-p", 1.5), "--top-p: "),
    (("--min-len", -1), "--min-len: "),
    (("--min-len", 6, "--max-len", 5), "--max-len: 5 is below --min-len (6)"),
    (("--seconds", 0), "--seconds: "),
    (("--exclude", "nowhere.txt"), "nowhere.txt"),
])
def test_bad_sample_flags_get_a_one_line_error(run_folder, flags, fragment):
    assert_one_line_error(cli("sample", run_folder, *flags), fragment)


def test_score_command(run_folder, tmp_path):
    result = cli("score", run_folder, "maria", "josé")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("word") and [line.split()[0] for line in lines[1:]] == ["maria", "josé"]
    run = makemore.load(run_folder)
    assert float(lines[1].split()[1]) == pytest.approx(run.score(["maria"])[0].logprob, abs=1e-3)
    listed = tmp_path / "w.txt"
    listed.write_text("luna\nmar\n", encoding="utf-8")
    from_file = cli("score", run_folder, "--file", listed)
    assert [line.split()[0] for line in from_file.stdout.splitlines()[1:]] == ["luna", "mar"]
    assert_one_line_error(cli("score", run_folder, "maQ"), "character 'Q' of 'maQ' is not in the model's vocabulary")
    assert_one_line_error(cli("score", run_folder), "give words to score")


def test_the_python_api_has_every_control(run_folder):
    run = makemore.load(run_folder)
    names = run.generate(30, seed=2, temperature=1.2, top_k=10, top_p=0.95, prefix="l", min_len=3, max_len=9,
                         unique=True, exclude=["lu", "la"], novel_only=True)
    assert len(names) == len(set(names)) == 30
    assert all(n.startswith("l") and 3 <= len(n) <= 9 and n not in run.known() for n in names)
    assert names == run.generate(30, seed=2, temperature=1.2, top_k=10, top_p=0.95, prefix="l", min_len=3,
                                 max_len=9, unique=True, exclude=["lu", "la"], novel_only=True)
    [s] = run.score(["luna"])
    assert s.word == "luna" and len(s.surprisal) == 5 and s.logprob < 0
    with pytest.raises(ConfigError, match="top_p"):
        run.generate(5, top_p=2)


@pytest.mark.slow
def test_the_default_recipe_takes_a_condition(two_lists, tmp_path):
    run = tmp_path / "run"
    result = cli("train", *two_lists, "--condition", "file", "--out", run, "--samples", 0)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("auto: ")
    loaded = makemore.load(run)
    assert loaded.model_name == "gru" and loaded.classes == ["soft", "hard"]
    hard = loaded.generate(50, cls="hard", seed=1)
    soft = loaded.generate(50, cls="soft", seed=1)
    assert sum(w.startswith("k") and w.endswith("k") for w in hard) > 40 and sum("k" in w for w in soft) < 5
