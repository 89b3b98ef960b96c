"""Runs described by TOML files: flags override them, bad keys and types are named, config.json records all."""

import json

import pytest

import makemore.config
from makemore.cli import main
from makemore.config import preset_path, presets, read_config, resolve_run
from makemore.errors import UserError

from conftest import assert_one_line_error, cli


def write(tmp_path, text):
    path = tmp_path / "exp.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_file_with_flag_overrides(tmp_path, word_file):
    config = write(tmp_path, f'data = "{word_file}"\nmodel = "mlp"\n[options]\nn_hidden = 32\nblock_size = 4\n'
                             '[train]\nsteps = 40\nbatch_size = 8\nlr = 0.05\neval_every = 20\n')
    out = tmp_path / "run"
    result = cli("train", "--config", config, "--steps", 30, "--n-embd", 6, "--out", out, "--samples", 0)
    assert result.returncode == 0, result.stderr
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["model"] == "mlp"
    assert resolved["model_config"] == {"vocab_size": resolved["model_config"]["vocab_size"], "block_size": 4,
                                        "n_embd": 6, "n_hidden": 32}
    assert resolved["train"]["steps"] == 30 and resolved["train"]["lr"] == 0.05 and resolved["train"]["batch_size"] == 8
    assert resolved["train"]["optimizer"] == "sgd"  # the default, from neither file nor flag


@pytest.mark.parametrize("text, fragment", [
    ('data = "names"\nepochs = 3\n',
     "unknown key 'epochs'; valid keys: data, model, condition, ascii, [options], [train], [cuda]"),
    ('data = "names"\n[train]\nstep = 3\n', "unknown key 'step' in [train]; valid keys: steps,"),
    ('data = "names"\n[train]\nlr = "fast"\n', "[train] lr: expected float, got str 'fast'"),
    ('data = "names"\n[train]\nsteps = 2.5\n', "[train] steps: expected int, got float 2.5"),
    ('data = "names"\n[train]\nsteps = 0\n', "[train] steps: expected an integer in (0, 1,000,000,000], got '0'"),
    ('data = "names"\n[train]\noptimizer = "lbfgs"\n', "[train] optimizer: expected one of sgd, adamw, got 'lbfgs'"),
    ('data = "names"\nmodel = "mlp"\n[options]\nn_heads = 2\n', "unknown key 'n_heads' in [options] for model 'mlp'"),
    ('data = "names"\n[options]\nn_hidden = "big"\n', "[options] n_hidden: expected int, got str 'big'"),
    ('data = 3\n', "data must be a string or a list of strings"),
    ('data = "names\n', "not valid TOML"),
])
def test_bad_config_names_the_file_and_key(tmp_path, text, fragment):
    config = write(tmp_path, text)
    assert_one_line_error(cli("train", "--config", config, "--out", tmp_path / "run"), "exp.toml", fragment)


def as_if_on_a_gpu(monkeypatch):
    """resolve_run decides with on_gpu whether [cuda.*] applies: here it answers yes for auto and cuda. The
    trainer still resolves its device itself: a run so resolved trains on the CPU."""
    monkeypatch.setattr(makemore.config, "on_gpu", lambda device: device in ("auto", "cuda"))


def test_cuda_tables_apply_on_a_gpu_only(tmp_path, monkeypatch):
    """[cuda.options] and [cuda.train] override [options] and [train] when the run is on a GPU; flags override all."""
    config = tmp_path / "both.toml"
    config.write_text('model = "lstm"\n[options]\nn_hidden = 16\n[train]\nsteps = 100\nlr = 0.01\n'
                      '[cuda.options]\nn_hidden = 64\n[cuda.train]\nsteps = 10\nbatch_size = 512\n')

    def resolved(**given):
        return resolve_run(read_config(config), config, dict(lr=0.5, **given))

    on_cpu = resolved(device="cpu")
    assert (on_cpu.options["n_hidden"], on_cpu.train.steps, on_cpu.train.batch_size, on_cpu.train.lr) == (16, 100, 32, 0.5)
    as_if_on_a_gpu(monkeypatch)
    assert resolved(device="cpu").options["n_hidden"] == 16
    on_gpu = resolved()  # device auto: the GPU
    assert (on_gpu.options["n_hidden"], on_gpu.train.steps, on_gpu.train.batch_size, on_gpu.train.lr) == (64, 10, 512, 0.5)


@pytest.mark.parametrize("text, fragment", [
    ("[cuda]\nsteps = 3\n", "[cuda] holds only the tables [cuda.options] and [cuda.train], not 'steps'"),
    ("[cuda.train]\nlr = -1.0\n", "[cuda.train] lr: expected a positive number"),
])
def test_bad_cuda_tables(tmp_path, text, fragment):
    config = tmp_path / "gpu.toml"
    config.write_text(text)
    assert_one_line_error(cli("train", "names", "--config", config, "--out", tmp_path / "run"), "gpu.toml", fragment)


def test_bad_cuda_option_is_named_on_a_gpu(tmp_path, monkeypatch):
    config = tmp_path / "gpu.toml"
    config.write_text('model = "lstm"\n[cuda.options]\nn_skip = 3\n')
    as_if_on_a_gpu(monkeypatch)
    with pytest.raises(UserError, match=r"gpu.toml: unknown key 'n_skip' in \[cuda.options\] for model 'lstm'"):
        resolve_run(read_config(config), config)


def test_unknown_preset_lists_the_presets(tmp_path):
    assert_one_line_error(cli("train", "names", "--preset", "fastest", "--out", tmp_path / "r"),
                          "--preset", "'fastest'", "fast, ")
    assert_one_line_error(cli("train", "names", "--preset", "fast", "--config", tmp_path / "x.toml"),
                          "--preset: give it or --config, not both")


def test_missing_config_file(tmp_path):
    assert_one_line_error(cli("train", "--config", tmp_path / "nope.toml"), "--config", "no such file")


@pytest.mark.parametrize("preset", presets())
def test_shipped_presets_are_valid(preset, tmp_path, word_file, capsys):
    """Every preset parses and builds its model; one step on a small list (given data overrides the preset's
    names) proves the whole description is accepted. In process: a subprocess per preset costs seconds."""
    doc = read_config(preset_path(preset))
    assert doc["data"] == "names"
    teacher = []
    if "distill" in doc.get("train", {}):  # a student preset: it learns from a run of the same list
        assert main(["train", str(word_file), "--model", "bigram", "--out", str(tmp_path / "teacher"), "--samples",
                     "0"]) == 0
        teacher = ["--teacher", str(tmp_path / "teacher")]
    assert main(["train", str(word_file), "--preset", preset, "--steps", "1", "--eval-every", "1", "--out",
                 str(tmp_path / "run"), "--samples", "0", "--device", "cpu", *teacher]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"] == str(word_file)


def test_ascii_flag_and_key(tmp_path, capsys):
    """--ascii (or ascii = true in a config) trains on the list with accents and tildes stripped."""
    assert main(["train", "spanish-places", "--ascii", "--model", "bigram", "--out", str(tmp_path / "run"),
                 "--samples", "3"]) == 0
    # 33 ASCII characters and the boundary
    assert "spanish-places (ascii): 7,399 items, vocabulary of 34" in capsys.readouterr().out
    bad = write(tmp_path, 'ascii = "yes"\n')
    assert_one_line_error(cli("train", "names", "--config", bad, "--out", tmp_path / "r2"), "exp.toml",
                          "ascii must be true or false")


def test_the_lecture_preset_keeps_its_last_model_as_the_lecture_does():
    """The lecture evaluates once, at the end, and reports train 1.7690 / val 1.9937. With evaluations along the
    way a run keeps its best one (val 1.9901 at step 180,000 on names), so the preset evaluates at its end only,
    and has no patience: the model kept is the last."""
    spec = resolve_run(read_config(preset_path("lecture")), preset_path("lecture"))
    assert spec.train.eval_every >= spec.train.steps == 200_000 and spec.train.patience == 0
    assert spec.model_name == "hierarchical" and spec.train.optimizer == "sgd" and spec.train.seed == 42
