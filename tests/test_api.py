"""The Python API: makemore.train / load / resolve and a Run's generate and evaluate; bad arguments raise one
exception type, ConfigError, which names the setting as Python spells it."""

import json

import pytest

import makemore
from makemore import ConfigError

from conftest import ITEMS


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    data = folder / "words.txt"
    data.write_text("\n".join(ITEMS) + "\n", encoding="utf-8")
    return makemore.train(data, model="gru", n_embd=8, n_hidden=32, steps=200, batch_size=16, optimizer="adamw",
                          lr=0.01, eval_every=100, out=folder / "run", verbose=False)


def test_train_returns_the_run_its_folder_holds(run):
    summary = json.loads((run.folder / "summary.json").read_text())
    assert run.model_name == "gru" and run.model.config.n_hidden == 32 and run.train_config.steps == 200
    assert run.evaluate("val") == pytest.approx(summary["val_loss"], abs=1e-9)
    again = makemore.load(run.folder)
    assert again.evaluate("val") == run.evaluate("val")


def test_generate_has_a_sensible_max_len_and_repeats_with_a_seed(run):
    names = run.generate(30, temperature=0.8, prefix="ma", seed=1)
    assert len(names) == 30 and all(n.startswith("ma") for n in names)
    assert max(map(len, names)) <= 2 * max(map(len, ITEMS)) + 2  # cut at twice the longest item, prefix included
    assert run.generate(30, temperature=0.8, prefix="ma", seed=1) == names
    assert not set(run.generate(20, novel_only=True, seed=2)) & set(ITEMS)


def test_resolve_checks_without_training(word_file):
    spec = makemore.resolve(word_file, preset="fast", n_hidden=64, steps=10)
    assert spec.model_name == "lstm" and spec.options["n_hidden"] == 64 and spec.train.steps == 10
    assert spec.train.optimizer == "adamw"  # from the preset


@pytest.mark.parametrize("call, field, fragment", [
    (lambda f: makemore.resolve(f, lr=-1.0), "lr", "expected a positive number, got '-1.0'"),
    (lambda f: makemore.resolve(f, steps=2.5), "steps", "expected int, got float 2.5"),
    (lambda f: makemore.resolve(f, optimizer="lbfgs"), "optimizer", "expected one of sgd, adamw"),
    (lambda f: makemore.resolve(f, model="bigram", n_hidden=5), "n_hidden", "model 'bigram' has no such option"),
    (lambda f: makemore.resolve(f, learning_rate=0.1), "learning_rate", "no such setting"),
    (lambda f: makemore.resolve(f, model="wavenet2"), "model", "unknown model 'wavenet2'"),
    (lambda f: makemore.resolve(f, preset="fastest"), "preset", "unknown preset 'fastest'"),
    (lambda f: makemore.resolve(f, model="gru", dropout=1.0), "dropout", "expected a number in [0, 1)"),
    (lambda f: makemore.train(f, model="transformer", n_embd=10, n_head=4, verbose=False), "n_embd",
     "10 is not a multiple of n_head (4)"),
])
def test_bad_arguments_raise_config_error_naming_the_field(word_file, call, field, fragment):
    with pytest.raises(ConfigError) as e:
        call(word_file)
    assert e.value.field == field and str(e.value).startswith(f"{field}: ") and fragment in str(e.value)
    assert "--" not in str(e.value)  # Python's names, not the command line's flags
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("options, field", [
    (dict(temperature=0.0), "temperature"), (dict(prefix="maZ"), "prefix"), (dict(top_k=0), "top_k"),
    (dict(cls="girls"), "cls"),
])
def test_bad_sampling_options_raise_config_error(run, options, field):
    with pytest.raises(ConfigError) as e:
        run.generate(5, **options)
    assert e.value.field == field and "--" not in str(e.value)
    with pytest.raises(ConfigError, match="split: expected one of train, val, test"):
        run.evaluate("dev")


def test_the_progress_bar_moves_between_logs(word_file, tmp_path, capsys):
    """A run that stops before its first log (patience or a time limit, on a short run) shows the steps it made."""
    def stop_at_20(trainer, event):
        trainer.stop = trainer.stop or (event == "step" and trainer.step == 20)

    makemore.train(word_file, model="gru", n_embd=8, n_hidden=16, steps=30, batch_size=8, eval_every=10**6,
                   out=tmp_path / "run", callbacks=[stop_at_20])
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert any("20/30" in line for line in bar)


def test_the_api_takes_what_it_gives(word_file, tmp_path, monkeypatch):
    """resolve() gives a RunSpec that train() takes; train() gives back the model it trained, not one read from
    its folder; ensemble() takes those Runs; start() gives a Training whose run() is train()'s."""
    from makemore import training

    def no_reading(*args, **kwargs):
        raise AssertionError("the run was read back from its folder")

    spec = makemore.resolve(word_file, steps=20, seed=3)
    assert isinstance(spec, makemore.RunSpec) and spec.model_name == "gru+ngram" and spec.note.startswith("auto: ")
    monkeypatch.setattr(training, "load_run", no_reading)
    first = makemore.train(spec, out=tmp_path / "a", verbose=False)
    started = makemore.start(spec, out=tmp_path / "b", seed=4)
    assert isinstance(started, makemore.Training) and started.trainer.cfg.seed == 4
    second = started.run(verbose=False)
    monkeypatch.undo()
    assert first.summary["val_loss"] == pytest.approx(makemore.load(first.folder).evaluate("val"), abs=1e-5)
    assert first.summary["test_loss"] == pytest.approx(makemore.load(first.folder).evaluate("test"), abs=1e-5)
    both = makemore.ensemble([first, second], out=tmp_path / "both")
    assert both.model_name == "ensemble" and both.evaluate("val") <= min(first.evaluate("val"), second.evaluate("val")) + 1e-6
    with pytest.raises(TypeError, match="a RunSpec is resolved already"):
        makemore.train(spec, preset="fast")
