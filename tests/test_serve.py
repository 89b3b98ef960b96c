"""makemore serve: the HTTP API (every validation rule, with TestClient) and the page in a real browser."""

import json
import math
import os
import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import CHROMIUM, cli, make_items, serving

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from makemore.api import load  # noqa: E402
from makemore.serve import MAX_BODY, Worker, create_app  # noqa: E402


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
    # with no filter (the list's style is one: test_style.py), one round of 50 rows: the novelty is the names'
    request = {"n": 50, "prefix": "ma", "seed": 3, "temperature": 0.8, "top_k": 10, "list_style": False}
    r = client.post("/api/generate", json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    names = body["names"]
    assert len(names) == 50 and all(x["name"].startswith("ma") for x in names)
    assert all(x["logprob"] < 0 and math.isfinite(x["logprob"]) for x in names)
    assert all(x["known"] == (x["name"] in runs["items"]) for x in names)
    assert body["novelty"] == pytest.approx(sum(not x["known"] for x in names) / 50)
    again = client.post("/api/generate", json=request)
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
    ({"n": 0}, "n", "greater than 0"),
    ({"n": True}, "n", "expected a number, got a boolean"),
    ({"temperature": False}, "temperature", "expected a number, got a boolean"),
    ({"n": 1001}, "n", "less than or equal to 1000"),
    ({"n": "many"}, "n", "valid integer"),
    ({"temperature": 0}, "temperature", "greater than 0"),
    ({"temperature": -1}, "temperature", "greater than 0"),
    ({"temperature": 5.01}, "temperature", "less than or equal to 5"),
    ({"top_k": 0}, "top_k", "greater than 0"),
    ({"prefix": "a" * 33}, "prefix", "at most 32 characters"),
    ({"prefix": "maZ"}, "prefix", "character 'Z' is not in the model's vocabulary"),
    ({"seed": -1}, "seed", "greater than or equal to 0"),
    ({"novel_only": "perhaps"}, "novel_only", "valid boolean"),
    ({"class": "girls"}, "class", "this model is not conditioned on classes"),
    ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ({"top_p": 0}, "top_p", "greater than 0"),
    ({"top_p": 1.5}, "top_p", "less than or equal to 1"),
    ({"min_len": -1}, "min_len", "greater than or equal to 0"),
    ({"max_len": 0}, "max_len", "greater than 0"),
    ({"max_len": 1001}, "max_len", "less than or equal to 1000"),
    ({"min_len": 6, "max_len": 5}, "max_len", "5 is below min_len (6)"),
    ({"exclude": "bob"}, "exclude", "valid list"),
    ({"unique": "twice"}, "unique", "valid boolean"),
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
    assert r.status_code == 413 and r.json()["error"] == f"body: the request body is over {MAX_BODY:,} bytes"
    r = client.post("/api/generate", json=[1, 2])
    assert r.status_code == 422
    r = client.post("/api/next", json={"prefix": "Z"})
    assert r.status_code == 422 and "'Z'" in r.json()["error"]


def test_a_tiny_temperature_is_argmax_not_an_error(client):
    r = client.post("/api/generate", json={"n": 5, "temperature": 1e-300, "seed": 1, "min_len": 0})  # the argmax path
    # of this model from an empty name ends; with min_len 1 it loops until max_len: then no name, still no error
    assert r.status_code == 200
    assert len({x["name"] for x in r.json()["names"]}) == 1  # no randomness left: one name, five times


def test_every_control(client, runs):
    excluded = [x["name"] for x in client.post("/api/generate", json={"n": 20, "seed": 5}).json()["names"]]
    body = {"n": 40, "seed": 5, "top_p": 0.95, "top_k": 12, "min_len": 3, "max_len": 9, "unique": True,
            "exclude": excluded, "temperature": 1.2}
    r = client.post("/api/generate", json=body)
    assert r.status_code == 200, r.text
    names = [x["name"] for x in r.json()["names"]]
    assert len(names) == len(set(names)) == 40 and r.json()["complete"]
    assert all(3 <= len(n) <= 9 for n in names) and not set(names) & set(excluded)
    assert client.post("/api/generate", json=body).json()["names"] == r.json()["names"]


def test_an_impossible_request_answers_with_what_it_found(client):
    r = client.post("/api/generate", json={"n": 100, "prefix": "ma", "min_len": 3, "max_len": 3, "unique": True})
    assert r.status_code == 200
    body = r.json()
    assert not body["complete"] and 0 < len(body["names"]) < 30


def test_scores_are_the_libraries(client, runs):
    r = client.post("/api/score", json={"words": ["maria", "lu"]})
    assert r.status_code == 200, r.text
    scores = r.json()["scores"]
    expected = load(runs["plain"]).score(["maria", "lu"])
    assert [s["word"] for s in scores] == ["maria", "lu"]
    for got, want in zip(scores, expected):
        assert got["logprob"] == pytest.approx(want.logprob) and got["surprisal"] == pytest.approx(want.surprisal)
        assert got["mean"] == pytest.approx(want.mean)
    r = client.post("/api/score", json={"words": ["maQ"]})
    assert r.status_code == 422 and r.json()["error"] == "words: character 'Q' of 'maQ' is not in the model's vocabulary"
    r = client.post("/api/score", json={"words": []})
    assert r.status_code == 422 and r.json()["error"].startswith("words: ")


def test_requests_that_wait_together_are_one_batch_and_get_what_they_get_alone(runs):
    """Requests submitted while the worker is held are decoded in one batch; each gets the names it gets alone."""
    run = load(runs["plain"])
    asks = [dict(n=30, seed=1), dict(n=5, seed=2, prefix="ma", temperature=0.5),
            dict(n=50, seed=3, top_k=4, top_p=0.9, min_len=4, max_len=8), dict(n=1, seed=4, temperature=2.0)]
    alone = [run.draw(**ask).names for ask in asks]
    worker = Worker(run)
    with worker.ready:  # the worker cannot take them until all are submitted
        futures = [worker.submit(run.sampler(logprobs=True, **ask)) for ask in asks]
    together = [[w for w, _ in f.result(timeout=60).names] for f in futures]
    assert together == alone
    assert worker.most_jobs == len(asks)  # their first rounds in one batch


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
    result = cli("serve", tmp_path / "nope", "--workers", 2)  # refused before any worker process starts
    assert result.returncode == 2 and "no such run folder" in result.stderr
    result = cli("serve", runs["plain"], "--workers", 0)
    assert result.returncode == 2 and "--workers" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- a real browser

@pytest.fixture(scope="module")
def server(runs):  # one server for the tests that only send it requests
    with serving(runs["plain"]) as (url, _):
        yield url


def post(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return r.status, json.loads(r.read())


def check_burst_gets_what_each_gets_alone(url):
    """16 requests at once, with seeds and mixed options: each gets the names it got alone."""
    bodies = [{"n": 5 + 7 * i, "seed": i, "temperature": 0.6 + 0.1 * i, "top_k": [None, 5][i % 2],
               "top_p": [None, 0.9][i % 3 == 0], "prefix": ["", "ma", "l"][i % 3]} for i in range(16)]
    one_at_a_time = [post(url + "/api/generate", b) for b in bodies]
    with ThreadPoolExecutor(16) as pool:
        at_once = list(pool.map(lambda b: post(url + "/api/generate", b), bodies))
    assert [s for s, _ in at_once] == [200] * 16
    assert [[x["name"] for x in r["names"]] for _, r in at_once] == [[x["name"] for x in r["names"]]
                                                                      for _, r in one_at_a_time]


@pytest.mark.slow
def test_concurrent_requests_get_what_they_get_one_at_a_time(server):
    check_burst_gets_what_each_gets_alone(server)


def children(pid: int) -> list[str]:
    """The command lines of a process's running children (Linux /proc)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(Path(f"/proc/{entry}/cmdline").read_text().replace("\0", " "))
        except OSError:  # gone meanwhile
            continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts the server's processes in /proc")
def test_worker_processes_share_the_port_and_each_seed_gives_its_names(runs):
    """serve --workers 2: two processes of uvicorn's, each with the model, answer on one port; requests at once
    and one at a time, whichever process takes each, give the same names for the same seed."""
    with serving(runs["plain"], "--workers", "2") as (url, proc):
        assert sum("spawn_main" in c for c in children(proc.pid)) == 2, children(proc.pid)
        check_burst_gets_what_each_gets_alone(url)
    assert not children(proc.pid)  # stopped with the server


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

            page.uncheck("#novel_only")  # the other controls: lengths, top-p, each once, names never to give
            page.fill("#prefix", "")
            page.fill("#n", "15")
            page.fill("#top_p", "0.9")
            page.fill("#min_len", "4")
            page.fill("#max_len", "7")
            page.check("#unique")
            excluded = names[:5]
            page.fill("#exclude", "\n".join(excluded))
            page.click("#generate")
            page.wait_for_function("document.querySelectorAll('#names li').length === 15")
            got = page.locator("#names li").all_inner_texts()
            assert len(got) == len(set(got)) == 15, got
            assert all(4 <= len(n) <= 7 for n in got) and not set(got) & set(excluded), got
            for ticked in (True, False):  # "written like the list": ticked by default, sent with the request
                assert page.is_checked("#list_style") == ticked
                with page.expect_response("**/api/generate") as answer:
                    page.click("#generate")
                assert answer.value.request.post_data_json["list_style"] is ticked and answer.value.ok
                page.uncheck("#list_style")

            page.fill("#words", "maria\nlu")  # scores
            page.click("#score")
            page.wait_for_selector("#scores tbody tr")
            cells = page.locator("#scores tbody tr").first.locator("td").all_inner_texts()
            assert cells[0] == "maria" and float(cells[1]) < 0 and cells[3].startswith("m ")
            assert page.locator("#scores tbody tr").count() == 2

            drawn = {"names": [{"name": n, "logprob": -9.0, "known": False} for n in ("st. ri  droma", "a b")],
                     "drawn": 2, "complete": True, "novelty": 1.0, "guidance": None}
            page.route("**/api/generate", lambda route: route.fulfill(json=drawn))  # a list whose names hold two spaces
            page.click("#generate")
            page.wait_for_function("document.querySelectorAll('#names li').length === 2")
            assert page.locator("#names li").all_inner_texts() == ["st. ri  droma", "a b"]  # shown as drawn
            page.unroute("**/api/generate")

            page.fill("#prefix", "Q")  # not in the vocabulary: the message, not a broken page
            page.click("#generate")
            page.wait_for_selector("#error:not([hidden])")
            assert "'Q' is not in the model's vocabulary" in page.inner_text("#error")
        finally:
            browser.close()
    assert (tmp_path / "page.png").stat().st_size > 1000


@pytest.mark.slow
def test_a_body_announced_over_the_limit_is_refused_before_it_is_sent(server):
    """A Content-Length over the limit gets its 413 at once: the server reads none of the body (the client here
    never sends one)."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"POST /api/generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {10**12}\r\n\r\n".encode())
        reply = b""
        while b"bytes" not in reply and (chunk := s.recv(4096)):
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413") and f"the request body is over {MAX_BODY:,} bytes" in reply
