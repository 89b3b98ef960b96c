"""makemore as a user runs it: train -> sample -> eval on a list of their own, and every bad input. In this
process through main(argv); a fresh process where exit codes and stderr of the real program are the point."""

import json
import math

import pytest
import torch

import makemore
from makemore.auto import AUTO_MAX_NETWORKS, ngram_context_for
from makemore.data import Corpus, Vocab
from makemore.models import MODELS
from makemore.models.interpolated import DISCOUNTS

from conftest import assert_one_line_error, cli, make_items, run_cli

V = Vocab.from_items(make_items()).size


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A few steps of the default recipe (auto) on a list with spaces, accents and '.' in its items."""
    folder = tmp_path_factory.mktemp("cli")
    data = folder / "my list.txt"
    data.write_text("\n".join(make_items()) + "\n", encoding="utf-8")
    run = folder / "run"
    result = cli("train", data, "--steps", 300, "--eval-every", 100, "--batch-size", 16, "--out", run,
                     "--samples", 5)
    assert result.returncode == 0, result.stderr
    return run, data, result


def test_train_writes_the_run_folder(trained_run):
    run, data, result = trained_run
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.jsonl", "model.pt", "loss.png", "summary.json"}
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "gru+ngram" and config["train"]["steps"] == 300  # auto's choice; the flag's steps
    assert config["auto"].startswith("auto: 120 items, ") and config["train"]["patience"] == 10
    longest = max(map(len, make_items()))
    assert config["model_config"] == {"vocab_size": V, "block_size": longest + 1, "n_embd": 48, "n_hidden": 128,
                                      "n_layers": 1, "dropout": 0.5, "emb_dropout": 0.0,
                                      "weight_drop": 0.0, "cell": "gru", "n_classes": 0,
                                      "ngram_context": ngram_context_for(Corpus.load(data)), "discount": 0.0,  # 0: chosen on val
                                      "networks": AUTO_MAX_NETWORKS}  # a list this small leaves the time for them
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "val_loss" in m] == [100, 200, 300]
    assert [m["step"] for m in metrics if "log10_loss" in m] == [300]  # one log line per 1000 steps, and the last
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = result.stdout.splitlines()
    train_line = next(line for line in out if line.startswith("train "))
    val_line = next(line for line in out if line.startswith("val "))
    summary = json.loads((run / "summary.json").read_text())
    assert train_line == f"train {summary['train_loss']:.4f}" and val_line == f"val {summary['val_loss']:.4f}"
    assert summary["val_loss"] < math.log(V) - 0.5  # it learned something beyond uniform
    assert any(line.startswith("novelty ") for line in out)
    kept = makemore.load(run).model  # what val chose, as the kept model holds it, in the summary and on the screen
    assert 0 <= summary["ngram_share"] <= 1 and summary["ngram_discount"] in DISCOUNTS
    assert summary["ngram_share"] == round(kept.share.item(), 4) and summary["ngram_discount"] == kept.discount.item()
    best = next(m for m in metrics if m["step"] == summary["best_step"] and "val_loss" in m)
    assert (best["ngram_share"], best["ngram_discount"]) == (summary["ngram_share"], summary["ngram_discount"])
    assert f"mixed with the n-gram at a share of {summary['ngram_share']:.2f}, discount " \
           f"{summary['ngram_discount']:g} (both chosen on val)" in out


def test_eval_prints_one_line_per_split_like_split_loss(trained_run):
    run, _, _ = trained_run
    result = cli("eval", run, "--split", "train", "val", "test")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["train", "val", "test"]
    summary = json.loads((run / "summary.json").read_text())
    assert lines[1] == f"val {summary['val_loss']:.4f}"


def test_sample_with_prefix_marks_known_names_and_reports_novelty(trained_run):
    run, data, _ = trained_run
    items = set(data.read_text(encoding="utf-8").splitlines())
    result = cli("sample", run, "-n", 30, "--prefix", "jo", "--seed", 7, "--temperature", 0.8, "--top-k", 100)
    assert result.returncode == 0, result.stderr
    *names, last = result.stdout.splitlines()
    assert len(names) == 30
    for line in names:
        name = line[:-2] if line.endswith(" *") else line
        assert name.startswith("jo")
        assert line.endswith(" *") == (name in items)
    novel = sum(not line.endswith(" *") for line in names)
    assert last.startswith(f"novelty {100 * novel / 30:.1f}% ({novel} of 30")
    again = cli("sample", run, "-n", 30, "--prefix", "jo", "--seed", 7, "--temperature", 0.8, "--top-k", 100)
    assert again.stdout == result.stdout  # --seed makes it repeatable


def test_sample_novel_only(trained_run):
    run, data, _ = trained_run
    items = set(data.read_text(encoding="utf-8").splitlines())
    result = cli("sample", run, "-n", 10, "--novel-only", "--seed", 1)
    assert result.returncode == 0, result.stderr
    names = result.stdout.splitlines()[:-1]
    assert len(names) == 10 and not any(n in items for n in names)


# ----------------------------------------------------------------------------- bad input: data


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "binary", "latin1", "too-few"])
def test_train_bad_data(tmp_path, case):
    path = tmp_path / f"{case}.txt"
    expected = {"missing": "no such file", "directory": "is a directory", "empty": "is empty",
                "binary": f"{path}:2: binary data", "latin1": f"{path}:2: not valid UTF-8",
                "too-few": "has 3 items"}[case]
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "binary":
        path.write_bytes(b"fine\n\x00\x01\x02\xff\n")
    elif case == "latin1":
        path.write_bytes("ana\nJosé\n".encode("latin-1"))
    elif case == "too-few":
        path.write_text("a\nb\nc\n")
    result = cli("train", path, "--steps", 1, "--out", tmp_path / "run")
    assert_one_line_error(result, str(path), expected)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_real_process_exits_2_with_one_line_and_no_traceback(tmp_path, word_file):
    """What a user's shell sees, for a bad value found by the library (a real process: its exit code and stderr
    as the shell has them); a bad flag and a bad file, the same way, in this process."""
    assert_one_line_error(cli("train", word_file, "--steps", "0"), "--steps: expected an integer in (0, 1,000,000,000]")
    assert_one_line_error(cli("train", tmp_path / "missing.txt"), "missing.txt: no such file")
    assert_one_line_error(run_cli("train", word_file, "--model", "transformer", "--n-embd", 10, "--n-head", 4,
                                  "--out", tmp_path / "run"), "--n-embd: 10 is not a multiple of --n-head (4)")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--model", "nope"], "unknown model 'nope'; valid models: bigram, mlp, hierarchical"),
    (["--steps", "0"], "--steps: expected an integer in (0, 1,000,000,000], got '0'"),
    (["--lr", "fast"], "--lr: expected a positive number, got 'fast'"),
    (["--optimizer", "rmsprop"], "--optimizer: invalid choice: 'rmsprop'"),
    (["--device", "tpu"], "--device: invalid choice: 'tpu'"),
    (["--model", "bigram", "--n-hidden", "5"], "--n-hidden: model 'bigram' has no such option"),
    (["--model", "hierarchical", "--context", "6"], "--context: the tree needs a power of 2"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_train_bad_flags(word_file, tmp_path, args, fragment):
    result = cli("train", word_file, "--steps", 1, "--out", tmp_path / "run", *args)
    assert_one_line_error(result, fragment)


def test_train_never_overwrites_a_run(trained_run):
    run, data, _ = trained_run
    before = (run / "model.pt").read_bytes()
    result = cli("train", data, "--steps", 1, "--out", run)
    assert_one_line_error(result, "already holds a run")
    assert (run / "model.pt").read_bytes() == before


def test_train_bigram_from_the_cli(word_file, tmp_path):
    result = cli("train", word_file, "--model", "bigram", "--smoothing", 0.5, "--out", tmp_path / "bigram")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "bigram" / "summary.json").read_text())
    assert summary["params"] == V * V and summary["step"] == 0


# ----------------------------------------------------------------------------- bad input: run folders


@pytest.mark.parametrize("command", ["sample", "eval"])
def test_missing_run_folder(tmp_path, command):
    assert_one_line_error(cli(command, tmp_path / "nothing"), "nothing: no such run folder")


@pytest.mark.parametrize("command", ["sample", "eval"])
def test_folder_without_checkpoint(tmp_path, command):
    assert_one_line_error(cli(command, tmp_path), "not a run folder")


@pytest.mark.parametrize("command", ["sample", "eval"])
def test_corrupt_checkpoint(trained_run, tmp_path, command):
    run, _, _ = trained_run
    (tmp_path / "model.pt").write_bytes((run / "model.pt").read_bytes()[:500])
    assert_one_line_error(cli(command, tmp_path), "model.pt: corrupt checkpoint")


def test_checkpoint_from_an_incompatible_version(trained_run, tmp_path):
    run, _, _ = trained_run
    state = torch.load(run / "model.pt", weights_only=True)
    state["format"] = 99
    torch.save(state, tmp_path / "model.pt")
    assert_one_line_error(cli("sample", tmp_path), "checkpoint format 99 is not the one this makemore reads")
    state["format"] = 1
    state["model_config"]["n_layers"] = 3  # a field this version does not know
    torch.save(state, tmp_path / "model.pt")
    assert_one_line_error(cli("eval", tmp_path), "checkpoint does not match this makemore")


@pytest.mark.parametrize("args, fragment", [
    (["--temperature", "0"], "--temperature: expected a number in (0, 100], got '0'"),
    (["--prefix", "x!"], "--prefix: character 'x' is not in the model's vocabulary"),
    (["-n", "-1"], "expected an integer in (0, 1,000,000]"),
])
def test_sample_bad_flags(trained_run, args, fragment):
    run, _, _ = trained_run
    assert_one_line_error(cli("sample", run, *args), fragment)


def test_top_k_is_clamped_to_the_vocabulary(trained_run):
    run, _, _ = trained_run
    result = cli("sample", run, "-n", 3, "--top-k", 10_000, "--seed", 3)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 4


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_trains_and_samples_from_the_cli(word_file, tmp_path, model):
    run = tmp_path / model
    result = cli("train", word_file, "--model", model, "--steps", 20, "--batch-size", 8, "--optimizer", "adamw",
                     "--lr", 0.01, "--eval-every", 10, "--out", run, "--samples", 3)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == model and math.isfinite(summary["val_loss"])
    sample = cli("sample", run, "-n", 4, "--seed", 0)
    assert sample.returncode == 0, sample.stderr
    assert len(sample.stdout.splitlines()) == 5
    assert cli("eval", run, "--split", "test").stdout.startswith("test ")


def test_runs_table_sorted_by_val_loss_and_plot(trained_run, word_file, tmp_path):
    run, _, _ = trained_run
    folder = tmp_path / "runs"
    folder.mkdir()
    import shutil

    shutil.copytree(run, folder / "hier")
    assert cli("train", word_file, "--model", "bigram", "--out", folder / "bigram", "--samples", 0).returncode == 0
    (folder / "not-a-run").mkdir()
    result = cli("runs", folder)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["run", "model", "params", "steps"]
    vals = [float(row.split()[5]) for row in rows]
    assert len(rows) == 2 and vals == sorted(vals)
    png = tmp_path / "both.png"
    result = cli("plot", folder / "hier", folder / "bigram", "--out", png)
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert_one_line_error(cli("plot", folder / "not-a-run"), "not a run folder (no config.json)")
    assert_one_line_error(cli("runs", tmp_path / "missing"), "missing: no such folder")
