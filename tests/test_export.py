"""makemore export: the step model in onnxruntime, with the n-gram of the export's JSON mixed in as its README
says, gives the run's own log-probabilities along whole words."""

import json
import os
import random

import numpy as np
import pytest
import torch

import makemore
from makemore.export import EXPORTABLE, export_onnx
from makemore.score import score

from conftest import ITEMS, VOCAB, assert_one_line_error, cli, trained

ort = pytest.importorskip("onnxruntime")

WORDS = ["emma", "olivia", "x", "zzyzx", "annabelle"]
SMALL = dict(n_embd=8, n_hidden=16, steps=40, eval_every=20)


def ngram_probs(tables: dict, history: list, V: int) -> np.ndarray:
    """The exported n-gram's next-character distribution after history (the characters written, boundary first),
    computed from ngram.json as its README describes: interpolated Kneser-Ney up the orders from uniform."""
    context, D = tables["context"], tables["discount"]
    window = ([0] * context + history)[-context:] if context else []
    p = np.full(V, 1 / V)
    for k, rows in enumerate(tables["orders"]):
        h = window[len(window) - k:] if k else []
        counts = np.zeros(V)
        for row in rows:  # a consumer would index these; a scan is the plainest reading of the format
            if row[:k] == h:
                counts[row[k]] = row[k + 1]
        if counts.sum() > 0:
            p = (np.maximum(counts - D, 0) + D * (counts > 0).sum() * p) / counts.sum()
    return p


def exported_logprobs(folder, words) -> list[np.ndarray]:
    """Each word's log-probabilities of its characters and its end, from the export folder alone."""
    meta = json.loads((folder / "makemore.json").read_text(encoding="utf-8"))
    tables = json.loads((folder / "ngram.json").read_text()) if (folder / "ngram.json").exists() else None
    session = ort.InferenceSession(str(folder / "step.onnx")) if (folder / "step.onnx").exists() else None
    stoi = {ch: i for i, ch in enumerate(meta["vocab"]) if i}
    V, shape = len(meta["vocab"]), meta["state"]
    out = []
    for word in words:
        tokens = [stoi[ch] for ch in word] + [meta["boundary"]]
        if shape is None:
            state = {}
        elif shape["kind"] == "recurrent":  # the state at the start, as the README says
            state = {name: np.zeros((shape["n_layers"], 1, shape["n_hidden"]), np.float32) for name in shape["names"]}
        elif shape["kind"] == "tokens":
            state = {"tokens": np.full((1, shape["start"]), meta["boundary"], np.int64)}
        elif shape["kind"] == "kv":
            state = {"position": np.zeros(1, np.int64), "kv": np.zeros((1, *shape["kv"]), np.float32)}
        else:
            state = {name: np.zeros((1, *size), np.float32) for name, size in zip(shape["names"], shape["shapes"])}
        last, history, logps = meta["boundary"], [], []
        for target in tokens:
            logp, new = np.zeros(V), list(state.values())  # an n-gram alone: no network (its share is 1)
            if session is not None:
                logp, *new = session.run(None, {"token": np.array([last], np.int64), **state})
                logp = logp[0].astype(np.float64)
            if tables is not None:
                mixed = (1 - meta["share"]) * np.exp(logp) + meta["share"] * ngram_probs(tables, history, V)
                logp = np.log(mixed)
            logps.append(logp[target])
            state = dict(zip(state, new))
            last, history = target, history + [target]
        out.append(np.array(logps))
    return out


@pytest.mark.parametrize("model", EXPORTABLE)
def test_the_export_gives_the_models_log_probabilities_along_whole_words(tmp_path, model):
    """Every exportable family (tiny, trained a little): onnxruntime's log-probabilities along words of every
    length up to the longest of the list, within 1e-5 of the model's own."""
    network = trained(model)
    folder = export_onnx(network, model, VOCAB, "tiny", tmp_path / "export", max_len=20, val=None)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["README.md", "makemore.json", *(["step.onnx"] if model != "ngram" else []),
         *(["ngram.json"] if model.endswith("ngram") else [])])
    words = [w for w in WORDS if not VOCAB.unknown(w)] + sorted(ITEMS, key=len)[-3:] + sorted(ITEMS)[:4]
    for want, got in zip(score(network, VOCAB, words), exported_logprobs(folder, words)):
        np.testing.assert_allclose(got, -np.array(want.surprisal), atol=1e-5, rtol=0)


def test_several_networks_export_as_one_step_that_mixes_them(tmp_path):
    """gru+ngram with networks = 3: step.onnx runs the three at once, their states stacked, and mixes them at the
    run's weights; with the n-gram, the model's own log-probabilities."""
    model = trained("gru+ngram", networks=3)
    model.share.fill_(0.3), model.network_weights.copy_(torch.tensor([0.5, 0.3, 0.2]))
    folder = export_onnx(model, "gru+ngram", VOCAB, "tiny", tmp_path / "export", max_len=20, val=None)
    assert json.loads((folder / "makemore.json").read_text())["state"]["n_layers"] == 3 * model.config.n_layers
    words = [w for w in WORDS if not VOCAB.unknown(w)] + sorted(ITEMS, key=len)[-3:]
    for want, got in zip(score(model, VOCAB, words), exported_logprobs(folder, words)):
        np.testing.assert_allclose(got, -np.array(want.surprisal), atol=1e-5, rtol=0)


def test_a_run_exports_as_its_model(tmp_path, word_file):
    run = makemore.train(word_file, out=tmp_path / "run", verbose=False, **SMALL)  # the default recipe's model
    folder = run.export(tmp_path / "export")
    assert json.loads((folder / "makemore.json").read_text())["model"] == "gru+ngram"
    words = [w for w in WORDS if not run.vocab.unknown(w)]
    for want, got in zip(run.score(words), exported_logprobs(folder, words)):
        np.testing.assert_allclose(got, -np.array(want.surprisal), atol=1e-5, rtol=0)


def test_export_refusals_are_one_line(tmp_path, word_file):
    makemore.ensemble([makemore.train(word_file, model="ngram", out=tmp_path / "n", verbose=False)] * 2, out=tmp_path / "t")
    assert_one_line_error(cli("export", tmp_path / "t", "--out", tmp_path / "e"), "the ensemble family cannot be exported")
    makemore.train(word_file, model="mlp", out=tmp_path / "m", verbose=False, steps=10, eval_every=10)
    assert_one_line_error(cli("export", tmp_path / "m", "--web", tmp_path / "e"), "the mlp family cannot be exported as a page")
    makemore.train(word_file, model="gru", out=tmp_path / "g", verbose=False, **SMALL)
    assert cli("export", tmp_path / "g", "--out", tmp_path / "e").returncode == 0
    assert_one_line_error(cli("export", tmp_path / "g", "--out", tmp_path / "e"), "exists; give a new folder")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no half-written folder


# ----------------------------------------------------------------------------- the page (--web), in chromium

def web_page(browser, folder):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((folder / "index.html").as_uri())  # from the disk: no server at all
    page.wait_for_function("document.querySelector('#model-info').textContent !== 'loading the model…' || "
                           "!document.querySelector('#error').hidden")
    assert errors == []
    return page


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    from conftest import CHROMIUM

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no {CHROMIUM} (Debian: apt-get install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.mark.browser
@pytest.mark.parametrize("model, options", [("gru+ngram", {}), ("gru+ngram", dict(networks=3)), ("lstm", {}),
                                            ("rnn", {})])
def test_the_web_page_scores_as_makemore_score(tmp_path, word_file, browser, model, options):
    run = makemore.train(word_file, model=model, out=tmp_path / "run", verbose=False, **SMALL, **options)
    folder = run.export(tmp_path / "web", format="web")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "index.html", "makemore.js", "model.js",
                                                         "page.js", "style.css"]
    page = web_page(browser, folder)
    words = [w for w in WORDS + sorted(run.known())[:20] if not run.vocab.unknown(w)]
    got = page.evaluate("(words) => words.map((w) => model.score(w))", words)
    for want, scored in zip(run.score(words), got):
        assert scored["logprob"] == pytest.approx(want.logprob, abs=1e-4), scored["word"]
        np.testing.assert_allclose(scored["surprisal"], want.surprisal, atol=1e-4, rtol=0)
    page.fill("#words", "\n".join(words[:2]))  # the form shows the same
    page.click("#score")
    shown = page.locator("#scores tbody tr").first.locator("td").all_inner_texts()
    assert shown[0] == words[0] and float(shown[1]) == pytest.approx(run.score(words[:1])[0].logprob, abs=1e-4)
    greedy = page.evaluate("() => model.draw({top_k: 1, max_len: 30}, Math.random)")  # no chance left ...
    if greedy is not None:  # ... each character the likeliest after the ones before (to rounding, at a near tie)
        chars = list(greedy["name"]) + [""]
        for i, ch in enumerate(chars):
            probs = run.next_char_probs("".join(chars[:i]))
            assert probs[0 if ch == "" else run.vocab.chars.index(ch) + 1] >= max(probs) - 1e-5, (greedy, i)


@pytest.mark.browser
def test_the_web_page_generates_100_names_with_every_control(tmp_path, word_file, browser):
    run = makemore.train(word_file, out=tmp_path / "run", verbose=False, **SMALL)  # the default recipe's model
    page = web_page(browser, run.export(tmp_path / "web", format="web"))
    for field, value in [("n", "100"), ("temperature", "0.9"), ("top_k", "12"), ("top_p", "0.95"), ("prefix", "a"),
                         ("min_len", "4"), ("max_len", "9"), ("seed", "7")]:
        page.fill(f"#{field}", value)
    page.check("#novel_only")
    page.check("#unique")
    page.click("#generate")
    page.wait_for_selector("#names li")
    names = page.locator("#names li").all_inner_texts()
    assert len(names) == len(set(names)) == 100, page.inner_text("#stats")
    assert all(n.startswith("a") and 4 <= len(n) <= 9 and n not in run.known() for n in names), names
    page.click("#generate")  # the seed gives the same names again
    page.wait_for_function("document.querySelector('#stats').textContent !== ''")
    assert page.locator("#names li").all_inner_texts() == names
    page.fill("#prefix", "a~")
    page.click("#generate")
    assert "character \"~\" of \"a~\" is not in the model's vocabulary" in page.inner_text("#error")


@pytest.mark.browser
@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "model.js").unlink(), "no model.js here: this folder is not a makemore web export"),
    (lambda f: (f / "model.js").write_text('window.MAKEMORE_MODEL = {"format": "other/2"};'),
     'model.js is "other/2", not makemore-web/1'),
    (lambda f: (f / "model.js").write_text((f / "model.js").read_text()[:5000]), "model.js is cut short or damaged"),
])
def test_a_damaged_or_foreign_web_export_says_so_in_one_line(tmp_path, word_file, browser, damage, message):
    run = makemore.train(word_file, model="gru", out=tmp_path / "run", verbose=False, **SMALL)
    folder = run.export(tmp_path / "web", format="web")
    damage(folder)
    page = browser.new_page()
    page.goto((folder / "index.html").as_uri())
    page.wait_for_selector("#error:not([hidden])")
    error = page.inner_text("#error")
    assert message in error and "\n" not in error.strip() and page.locator("#form").is_hidden()


def places(folder, rng):
    """A list with capitals, brackets, a hyphen, digits, a few capitals inside a word, a few words with
    combining marks and a letter that ends a word."""
    parts = ["veen", "dam", "berg", "haag", "rijn", "wijk", "ñor", "dorp"]
    items = {rng.choice(parts).capitalize() + rng.choice(parts) + rng.choice(["", "", " (Noord)", "-Oost", " 2"])
             for _ in range(400)}
    items |= {"McVeen", "McDam", "McBerg", "DeHaag", "DeRijn"}  # a capital inside a word, in few items
    items |= {"सुमन", "किरण", "सिंह", "प्रिया"}  # vowel signs, a nasal mark on one, a virama
    items |= {f"א{c}ם" for c in "בגדהוזחטיכלמנסעפצקרשת"}  # a letter that ends every word it is in (21 uses)
    data = folder / "places.txt"
    data.write_text("\n".join(sorted(items)) + "\n", encoding="utf-8")
    return data, items


def test_an_export_carries_the_lists_style(tmp_path):
    data, _ = places(tmp_path, random.Random(0))
    run = makemore.train(data, model="gru", out=tmp_path / "run", verbose=False, **SMALL)
    meta = json.loads((run.export(tmp_path / "onnx") / "makemore.json").read_text(encoding="utf-8"))
    assert meta["sampling"]["style"] == json.loads(json.dumps(run.style(None).table())) and meta["sampling"]["style"]
    assert "`contexts`" in (tmp_path / "onnx" / "README.md").read_text(encoding="utf-8")


@pytest.mark.browser
def test_the_web_page_keeps_the_lists_style_as_makemore_does(tmp_path, browser):
    rng = random.Random(0)
    data, items = places(tmp_path, rng)
    run = makemore.train(data, model="gru", out=tmp_path / "run", verbose=False, **SMALL)
    style = run.style(None)
    chars = sorted(style.chars)
    assert style.contexts == {("lower", "upper"): frozenset({"Mc", "De"})}  # a capital inside a word: after these
    assert style.finals == {"ם", "t"}  # t: only in "-Oost"
    words = [rng.choice(sorted(items))] + ["".join(rng.choice(chars) for _ in range(rng.randint(1, 9)))
                                           for _ in range(2000)]
    words += [rng.choice(["Mc", "De", "Me", "a"]) + rng.choice(sorted(items)) for _ in range(200)]
    page = web_page(browser, run.export(tmp_path / "web", format="web"))
    got = page.evaluate("(words) => words.map((w) => model.fits(w))", words)
    assert got == [style.fits(w) for w in words] and any(got) and not all(got)
    encoded = page.evaluate("(words) => words.map((w) => model.encode(w))", ["Veen\u0303or", "Veeñor"])
    assert encoded[0] == encoded[1] == run.vocab.encode("Veeñor")  # composed, as makemore reads the list
    for list_style in (True, False):
        names = page.evaluate("(o) => model.generate(50, o, Math.random, 60).names.map((x) => x.name)",
                              {"max_len": 30, "min_len": 1, "list_style": list_style})
        assert len(names) == 50 and all(map(style.fits, names)) == list_style
