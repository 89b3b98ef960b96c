"""makemore serve: the HTTP API (every validation rule, with TestClient) and the page in a real browser."""

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import cli, free_port, make_items

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from makemore.serve import MAX_BODY, create_app  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny run on one list, and a conditioned wavenet on two."""
    folder = tmp_path_factory.mktemp("serve")
    items = make_items()
    words = folder / "words.txt"
    words.write_text("\n".join(items) + "\n", encoding="utf-8")
    plain = folder / "plain"
    result = cli("train", words, "--model", "hierarchical", "--steps", 200, "--eval-every", 100, "--batch-size", 16,
                 "--out", plain, "--samples", 0)
    assert result.returncode == 0, result.stderr
    (folder / "short.txt").write_text("\n".join(w for w in items if len(w) <= 6) + "\n", encoding="utf-8")
    (folder / "long.txt").write_text("\n".join(w for w in items if len(w) > 6) + "\n", encoding="utf-8")
    conditioned = folder / "conditioned"
    result = cli("train", folder / "short.txt", folder / "long.txt", "--condition", "file", "--model", "wavenet",
                     "--n-embd", 8, "--n-skip", 16, "--steps", 60, "--eval-every", 60, "--optimizer", "adamw",
                     "--lr", 0.01, "--out", conditioned, "--samples", 0)
    assert result.returncode == 0, result.stderr
    return {"plain": plain, "conditioned": conditioned, "items": set(items)}


@pytest.fixture(scope="module")
def client(runs):
    return TestClient(create_app(runs["plain"]))


def test_health_and_model(client, runs):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/api/model").json()
    summary = json.loads((runs["plain"] / "summary.json").read_text())
    assert info["model"] == "hierarchical" and info["params"] == summary["params"]
    assert info["val_loss"] == summary["val_loss"] and info["classes"] == []
    assert "".join(info["vocabulary"]) == "".join(sorted(set("".join(runs["items"]))))
    assert info["config"]["block_size"] == 8 and info["train"]["steps"] == 200


def test_generate_names_with_prefix_logprob_known_and_novelty(client, runs):
    r = client.post("/api/generate", json={"n": 50, "prefix": "ma", "seed": 3, "temperature": 0.8, "top_k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    names = body["names"]
    assert len(names) == 50 and all(x["name"].startswith("ma") for x in names)
    assert all(x["logprob"] < 0 and math.isfinite(x["logprob"]) for x in names)
    assert all(x["known"] == (x["name"] in runs["items"]) for x in names)
    assert body["novelty"] == pytest.approx(sum(not x["known"] for x in names) / 50)
    again = client.post("/api/generate", json={"n": 50, "prefix": "ma", "seed": 3, "temperature": 0.8, "top_k": 10})
    assert again.json()["names"] == names  # the same seed, the same names


def test_novel_only_gives_only_new_names(client):
    body = client.post("/api/generate", json={"n": 30, "novel_only": True, "seed": 0}).json()
    assert len(body["names"]) == 30 and not any(x["known"] for x in body["names"])
    assert body["drawn"] >= 30 and body["complete"]


def test_next_character_distribution(client):
    body = client.post("/api/next", json={"prefix": "ma"}).json()
    probs = [c["p"] for c in body["next"]]
    assert sum(probs) == pytest.approx(1.0) and probs == sorted(probs, reverse=True)
    assert sum(c["end"] for c in body["next"]) == 1


@pytest.mark.parametrize("body, field, fragment", [
    ({"n": 0}, "n", "greater than or equal to 1"),
    ({"n": 1001}, "n", "less than or equal to 1000"),
    ({"n": "many"}, "n", "valid integer"),
    ({"temperature": 0}, "temperature", "greater than 0"),
    ({"temperature": -1}, "temperature", "greater than 0"),
    ({"temperature": 5.01}, "temperature", "less than or equal to 5"),
    ({"top_k": 0}, "top_k", "greater than or equal to 1"),
    ({"prefix": "a" * 33}, "prefix", "at most 32 characters"),
    ({"prefix": "maZ"}, "prefix", "character 'Z' is not in the model's vocabulary"),
    ({"seed": -1}, "seed", "greater than or equal to 0"),
    ({"novel_only": "perhaps"}, "novel_only", "valid boolean"),
    ({"class": "girls"}, "class", "this model is not conditioned on classes"),
    ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
])
def test_invalid_requests_get_422_naming_the_field(client, body, field, fragment):
    r = client.post("/api/generate", json=body)
    assert r.status_code == 422, r.text
    data = r.json()
    assert data["detail"][0]["loc"] == ["body", field]
    assert data["error"].startswith(f"{field}: ") and fragment in data["error"]


def test_bad_bodies_get_422_never_500(client):
    r = client.post("/api/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]
    r = client.post("/api/generate", json={"prefix": "a" * (MAX_BODY + 1)})
    assert r.status_code == 422 and r.json()["error"] == f"body: the request body is over {MAX_BODY} bytes"
    r = client.post("/api/generate", json=[1, 2])
    assert r.status_code == 422
    r = client.post("/api/next", json={"prefix": "Z"})
    assert r.status_code == 422 and "'Z'" in r.json()["error"]


def test_a_tiny_temperature_is_argmax_not_an_error(client):
    r = client.post("/api/generate", json={"n": 5, "temperature": 1e-300, "seed": 1})
    assert r.status_code == 200
    assert len({x["name"] for x in r.json()["names"]}) == 1  # no randomness left: one name, five times


def test_classes_of_a_conditioned_model(runs):
    client = TestClient(create_app(runs["conditioned"]))
    assert client.get("/api/model").json()["classes"] == ["short", "long"]
    r = client.post("/api/generate", json={"n": 5})
    assert r.status_code == 422 and r.json()["error"] == "class: required; valid classes: short, long"
    r = client.post("/api/generate", json={"n": 5, "class": "medium"})
    assert r.status_code == 422 and "unknown class 'medium'" in r.json()["error"]
    r = client.post("/api/generate", json={"n": 5, "class": "long", "seed": 0})
    assert r.status_code == 200 and len(r.json()["names"]) == 5


def test_serve_cli_refuses_a_taken_port_and_a_bad_run(runs, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = cli("serve", runs["plain"], "--port", port)
    assert result.returncode == 2 and f"--port {port}: cannot listen there" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = cli("serve", tmp_path / "nope")
    assert result.returncode == 2 and "no such run folder" in result.stderr


# ----------------------------------------------------------------------------- a real browser

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def server(runs):
    """makemore serve as a user starts it, on a free localhost port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "makemore", "serve", str(runs["plain"]), "--port", str(port)],
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
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_in_chromium(server, runs, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no {CHROMIUM} (Debian: apt-get install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server + "/")
            page.wait_for_selector("#model-info:has-text('parameters')")
            assert page.locator("#class-label").is_hidden()  # no classes in this model: no class field
            page.fill("#n", "12")
            page.fill("#prefix", "lu")
            page.fill("#temperature", "0.9")
            page.click("#generate")
            page.wait_for_selector("#names li")
            names = page.locator("#names li").all_inner_texts()
            assert len(names) == 12
            assert all(name.startswith("lu") for name in names), names
            marked = page.locator("#names li.known").all_inner_texts()
            assert all(name in runs["items"] for name in marked)  # the mark is on names from the data only
            assert page.locator("#chart .col").count() > 0  # the next-character bars
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

            page.check("#novel_only")
            page.click("#generate")
            page.wait_for_function("document.querySelectorAll('#names li.known').length === 0")
            assert page.locator("#names li").count() == 12

            page.fill("#prefix", "Q")  # not in the vocabulary: the message, not a broken page
            page.click("#generate")
            page.wait_for_selector("#error:not([hidden])")
            assert "'Q' is not in the model's vocabulary" in page.inner_text("#error")
        finally:
            browser.close()
    assert (tmp_path / "page.png").stat().st_size > 1000
