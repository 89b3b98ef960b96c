"""makemore serve with no run: the workspace's API (TestClient, its queue held still), and the page in chromium
with real trainings: upload, train, curve, generate, download, cancel, kill and resume."""

import io
import json
import os
import shutil
import signal
import sys
import time
import urllib.request
import zipfile

import pytest

from conftest import CHROMIUM, make_items, serving

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import makemore  # noqa: E402
from makemore import workspace as ws  # noqa: E402
from makemore.workspace_app import create_workspace_app  # noqa: E402

LIST = ("\n".join(make_items(300, seed=5)) + "\n").encode()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "words.txt").write_bytes(LIST)
    makemore.train(folder / "words.txt", out=folder / "tiny", model="gru", n_embd=8, n_hidden=16, steps=40,
                   eval_every=20, verbose=False)
    return folder / "tiny"


@pytest.fixture
def held(tmp_path):
    """A workspace whose queue is not taken: what is added waits."""
    folder = tmp_path / "workspace"
    return TestClient(create_workspace_app(folder, start=False)), folder


def upload(client, data=LIST, **query):
    return client.post("/api/runs", params=query, content=data, headers={"Content-Type": "text/plain"})


@pytest.mark.parametrize("given, name", [
    ("Shop Names (v2).txt", "shop-names-v2"), ("../../etc/passwd", "passwd"), ("..\\..\\evil.txt", "evil"),
    ("/abs/path/list.csv", "list"), ("...", "list"), ("", "list"), ("Ünïcode Städte", "n-code-st-dte"),
    (".hidden", "hidden"), ("a" * 80, "a" * 40),
])
def test_a_run_is_named_after_its_list_cleaned(given, name):
    assert ws.clean_name(given) == name


def test_an_upload_is_checked_named_and_queued(held):
    client, folder = held
    first = upload(client, name="Shop Names (v2).txt")
    assert first.status_code == 201, first.text
    assert first.json()["name"] == "shop-names-v2" and first.json()["state"] == "queued" and first.json()["items"] == 300
    second = upload(client, name="shop names v2", preset="fast").json()
    assert second["name"] == "shop-names-v2-2" and second["preset"] == "fast"
    assert (folder / "shop-names-v2" / "shop-names-v2.txt").read_bytes() == LIST
    overview = client.get("/api/runs").json()
    assert overview["queue"] == ["shop-names-v2", "shop-names-v2-2"] and overview["training"] is None
    assert [r["name"] for r in overview["runs"]] == overview["queue"] and "fast" in overview["presets"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no upload left behind
    assert first.json()["note"] is None
    counts = "".join(f"{w},F,{1000 + i}\n" for i, w in enumerate(["Olivia", "Emma", "Ava", "Mia"] * 5)).encode()
    table = upload(client, counts, name="yob2020.txt").json()  # baby names with their counts: learnt as lines
    assert "every line of yob2020.txt has 2 commas and field 3 is a number" in table["note"]


def test_a_queued_run_cancelled_can_be_started_again(held):
    client, _ = held
    upload(client, name="a")
    cancelled = client.post("/api/runs/a/cancel").json()
    assert cancelled["state"] == "cancelled" and cancelled["resumable"] and client.get("/api/runs").json()["queue"] == []
    again = client.post("/api/runs/a/resume").json()
    assert again["state"] == "queued" and not again["resumable"]
    assert client.post("/api/runs/a/resume").status_code == 409  # queued: nothing to resume
    client.post("/api/runs/a/cancel")
    refused = client.post("/api/runs/a/cancel")
    assert refused.status_code == 409 and "not training or queued" in refused.json()["error"]


@pytest.mark.parametrize("data, query, status, fragments", [
    (b"ada\nbo\x00b\n", {"name": "nul"}, 422, ["list: nul.txt:2: binary data"]),
    (b"ada\n" + b"x" * 1001 + b"\n", {}, 422, ["list: list.txt:2: an item of 1,001 characters"]),
    (b"caf\xe9\n", {"name": "latin"}, 422, ["list: latin.txt:1: not valid UTF-8"]),
    (b"ada\nbob\n", {}, 422, ["list: list.txt: has 2 items, but the 80/10/10"]),
    (b"\n\n", {}, 422, ["list: list.txt: is empty"]),
    (LIST, {"preset": "quick"}, 422, ["preset: unknown preset 'quick'", "fast"]),
    (b"a" * (ws.MAX_UPLOAD + 1), {}, 413, ["body: the request body is over 8,388,608 bytes"]),
    ("".join(f"w{i}\n" for i in range(120_000)).encode() + b"x" * 1000 + b"\n", {}, 422,
     ["list: list.txt:120001: an item of 1,000 characters among 120,001 items", "padded to the longest"]),
])
def test_a_bad_upload_is_refused_with_what_is_wrong(held, data, query, status, fragments):
    client, folder = held
    response = upload(client, data, **query)
    assert response.status_code == status, response.text
    for fragment in fragments:
        assert fragment in response.json()["error"], response.json()
    assert list(folder.iterdir()) == []  # nothing made, nothing left


def test_a_list_over_the_item_limit_is_refused(held, monkeypatch):
    monkeypatch.setattr(ws, "MAX_ITEMS", 100)
    response = upload(held[0])
    assert response.status_code == 422 and response.json()["error"] == "list: 300 items; a list may have at most 100"


TRAVERSALS = ["..", "%2e%2e", "..%2F..%2Fetc", "%2E%2E%2Fsecret", ".hidden", "a%5C..%5Cb", "%2Fetc%2Fpasswd",
              "x%00y", "outside", "link", "workspace"]


def test_no_request_reads_or_writes_outside_the_workspace(held, tiny_run, tmp_path):
    client, folder = held
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "model.pt").write_bytes(b"not yours")
    shutil.copytree(tiny_run, tmp_path / "outside")  # a run beside the workspace, and a link to it from inside
    (folder / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    for name in TRAVERSALS:
        for method, path in [("GET", ""), ("GET", "/download"), ("GET", "/model"), ("POST", "/cancel"),
                             ("POST", "/resume"), ("POST", "/generate"), ("POST", "/score"), ("POST", "/next")]:
            body = {"words": ["ada"]} if path == "/score" else {}
            response = client.request(method, f"/api/runs/{name}{path}", json=body if method == "POST" else None)
            assert response.status_code in (404, 405), (name, path, response.status_code, response.text)
    for name in ["../../escaped", "/tmp/escaped", "..\\escaped", "link"]:
        assert upload(client, name=name).status_code == 201
    made = sorted(p.name for p in folder.iterdir())
    assert made == ["escaped", "escaped-2", "escaped-3", "link", "link-2"], made
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == sorted(p.name for p in tiny_run.iterdir())


def test_a_folder_of_runs_is_a_workspace(tmp_path, tiny_run):
    folder = tmp_path / "runs"
    shutil.copytree(tiny_run, folder / "tiny")
    unfinished = folder / "unfinished"  # as a killed training leaves it: a checkpoint, no test loss
    shutil.copytree(tiny_run, unfinished)
    summary = json.loads((unfinished / "summary.json").read_text())
    del summary["test_loss"]
    (unfinished / "summary.json").write_text(json.dumps(summary))
    client = TestClient(create_workspace_app(folder, start=False))
    runs = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    assert runs["tiny"]["state"] == "done" and runs["tiny"]["val_loss"] == summary["val_loss"]
    assert runs["unfinished"]["state"] == "stopped" and runs["unfinished"]["resumable"]
    from makemore.runfolder import FolderLock

    terminal = FolderLock(unfinished)  # a makemore train --resume in a terminal, as the workspace sees it
    terminal.acquire()
    busy = client.get("/api/runs/unfinished").json()
    assert busy["state"] == "busy" and busy["pid"] == os.getpid() and not busy["resumable"]
    refused = client.post("/api/runs/unfinished/resume")
    assert refused.status_code == 409 and "busy" in refused.json()["error"]
    terminal.release()
    assert client.get("/api/runs/unfinished").json()["state"] == "stopped"
    assert client.get("/api/runs/tiny").json()["curve"][-1]["step"] == 40

    names = client.post("/api/runs/tiny/generate", json={"n": 20, "seed": 3, "prefix": "a"}).json()["names"]
    assert len(names) == 20 and all(n["name"].startswith("a") for n in names)
    assert names == [{"name": w, "logprob": lp, "known": w in makemore.load(tiny_run).known()}
                     for w, lp in makemore.load(tiny_run).draw(20, seed=3, prefix="a", logprobs=True).names]
    bad = client.post("/api/runs/tiny/generate", json={"n": 0})
    assert bad.status_code == 422 and bad.json()["error"].startswith("n: ")
    scored = client.post("/api/runs/tiny/score", json={"words": ["ada"]}).json()["scores"][0]
    assert scored["logprob"] == pytest.approx(makemore.load(tiny_run).score(["ada"])[0].logprob, abs=1e-6)
    assert client.post("/api/runs/tiny/next", json={"prefix": "a"}).json()["prefix"] == "a"
    assert client.get("/api/runs/tiny/model").json()["model"] == "gru"

    archive = client.get("/api/runs/tiny/download")
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(archive.content)).extractall(tmp_path / "unzipped")
    again = makemore.load(tmp_path / "unzipped" / "tiny")
    assert again.score(["ada", "rosa"]) == makemore.load(tiny_run).score(["ada", "rosa"])

    upload(client, name="waiting")
    refused = client.post("/api/runs/waiting/generate", json={"n": 1})
    assert refused.status_code == 409 and "no trained model yet (queued)" in refused.json()["error"]


def test_how_a_training_ended_is_told_from_its_exit(tmp_path):
    """The runner's reading of an exit: 0 done; 2 the command's one-line error; killed, stopped and resumable."""
    workspace = ws.Workspace(tmp_path, start=False)
    name = workspace.add(LIST, "lost")
    workspace.queue.clear()
    (tmp_path / name / ws.LOG).write_text("step 10\nmakemore train: error: lr: the loss diverged at step 12\n")
    workspace.ended(name, 2)
    assert workspace.status(name)["state"] == "failed"
    assert workspace.status(name)["error"] == "lr: the loss diverged at step 12"
    workspace.ended(name, -signal.SIGKILL)
    stopped = workspace.status(name)
    assert stopped["state"] == "stopped" and stopped["resumable"] and stopped["error"].endswith("(signal SIGKILL)")
    command = workspace.command(name)  # no checkpoint: it trains from the start, from its list
    assert "--resume" not in command and command[command.index("--out") - 1] == "lost.txt"


def test_one_training_at_a_time_cancelled_or_stopped_with_the_server(tmp_path, monkeypatch):
    """The runner with a stand-in for `makemore train` (a process that waits for a signal): one runs, the next
    waits; cancel stops the one that runs and the next starts; the server's stop stops it too, as 'stopped'."""
    monkeypatch.setattr(ws.Workspace, "command", lambda self, name: [sys.executable, "-c", "import time; time.sleep(60)"])
    workspace = ws.Workspace(tmp_path)
    first, second = workspace.add(LIST, "first"), workspace.add(LIST, "second")
    wait_for(lambda: workspace.status(first)["pid"], seconds=30, what="the first to start")
    assert workspace.status(second)["state"] == "queued" and workspace.overview()["queue"] == [second]
    workspace.cancel(first)
    wait_for(lambda: workspace.status(second)["pid"], seconds=30, what="the second to start")
    assert workspace.status(first)["state"] == "cancelled" and workspace.status(first)["resumable"]
    workspace.resume(first)  # queued behind the one that trains
    workspace.close()
    wait_for(lambda: workspace.status(second)["state"] == "stopped", seconds=30, what="the second to stop")
    assert workspace.status(second)["error"] is None and workspace.status(second)["resumable"]
    time.sleep(0.5)
    assert workspace.status(first)["state"] == "queued" and workspace.current is None  # nothing new started


# ----------------------------------------------------------------------------- the page, with real trainings

def api(url, path, method="GET"):
    with urllib.request.urlopen(urllib.request.Request(url + path, method=method), timeout=30) as r:
        return json.loads(r.read())


def wait_for(check, seconds=180, what="the condition"):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"waited {seconds} s for {what}")


@pytest.mark.slow
@pytest.mark.browser
def test_the_workspace_in_chromium(tmp_path):
    """A list uploaded and trained with the default recipe; a second list pasted while it trains, queued behind
    it and cancelled; the first training killed midway, offered to resume and resumed to its end; its curve; 20
    names generated and downloaded. The cancelled list leaves the first run untouched."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no {CHROMIUM} (Debian: apt-get install chromium)")
    folder = tmp_path / "workspace"
    folder.mkdir()  # an empty folder of runs
    (tmp_path / "My Places.txt").write_bytes(LIST)
    with serving(folder) as (url, _), playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(accept_downloads=True)
        page.goto(url + "/")
        page.set_input_files("#upload", str(tmp_path / "My Places.txt"))
        page.click("#train")
        page.wait_for_selector("#run-name:has-text('my-places')")
        page.wait_for_selector("#cancel:visible")  # the page shows it training (or about to)

        counted = [f"{w},{i}" for i, w in enumerate(make_items(300, seed=2))]  # names with counts: a table
        page.fill("#list", "\n".join(counted))  # a second list, pasted: it waits for the first
        page.fill("#list-name", "second")
        page.click("#train")
        page.wait_for_selector("#run-name:has-text('second')")
        page.wait_for_selector("#run-note:has-text('every line of second.txt has 1 comma and field 2 is a number')")
        page.wait_for_selector("#queue:has-text('Waiting to train: second')")
        page.click("#cancel")
        page.wait_for_selector("#run-state:has-text('cancelled')")
        page.wait_for_selector("#queue", state="hidden")  # the queue, at the page's next look
        assert page.locator("#resume").is_visible()
        assert sorted(p.name for p in (folder / "second").iterdir()) == ["job.json", "second.txt"]  # never trained

        page.click("#runs button[data-run='my-places']")
        page.wait_for_selector("#run-note", state="hidden")  # a list of names: nothing to note
        checkpoint = folder / "my-places" / "model.pt"
        running = wait_for(lambda: checkpoint.exists() and api(url, "/api/runs/my-places")["pid"], what="a checkpoint")
        os.kill(running, signal.SIGKILL)  # killed midway, with no chance to save
        page.wait_for_selector("#run-state:has-text('not finished')", timeout=60_000)
        assert "SIGKILL" in page.inner_text("#run-error") and page.inner_text("#resume") == "Resume"
        page.click("#resume")  # on from its checkpoint, to its end
        page.wait_for_selector("#run-state:has-text('done')", timeout=180_000)
        summary = json.loads((folder / "my-places" / "summary.json").read_text())
        assert "test_loss" in summary and page.locator("#progress-row").is_hidden()
        assert f"test {summary['test_loss']:.4f}" in page.inner_text("#run-losses")
        assert page.locator("#curve").is_visible()  # the curve, with a point for each evaluation
        points = page.locator("#curve polyline.val").get_attribute("points")
        assert points.count(",") == len(api(url, "/api/runs/my-places")["curve"])

        frame = page.frame_locator("#generator")
        frame.locator("#model-info:has-text('parameters')").wait_for()
        frame.locator("#n").fill("20")
        frame.locator("#generate").click()
        frame.locator("#names li >> nth=19").wait_for()
        shown = frame.locator("#names li").all_inner_texts()
        with page.expect_download() as download:
            frame.locator("#download-txt").click()
        assert download.value.suggested_filename == "my-places-names.txt"
        lines = open(download.value.path(), encoding="utf-8").read().splitlines()
        assert lines == shown and len(shown) == 20  # the page shows each name as drawn, two spaces as two
        assert api(url, "/api/runs/second")["state"] == "cancelled"
        browser.close()
