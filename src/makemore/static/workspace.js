// The workspace page: its runs (GET /api/runs), a new list (POST /api/runs), the chosen run's progress and curve
// (GET /api/runs/NAME), cancel, resume and download; the run's generator is the one-run page in a frame.
"use strict";

const $ = (id) => document.getElementById(id);
const STATES = { queued: "waiting", training: "training", busy: "training in another process", done: "done", cancelled: "cancelled", stopped: "not finished", failed: "failed" };
let selected = new URLSearchParams(location.search).get("run");
let framed = null; // the run the generator frame shows, and the checkpoint it was loaded for

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function call(method, path, body, type = "application/json") {
  const response = await fetch(path, { method, body, headers: body === undefined ? {} : { "Content-Type": type } });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

const clock = (s) => (s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`);
const loss = (x) => (x == null ? "–" : x.toFixed(4));

function showRuns(overview) {
  const list = $("runs");
  list.replaceChildren();
  for (const run of overview.runs) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.run = run.name;
    if (run.name === selected) button.classList.add("selected");
    const name = document.createElement("span");
    name.textContent = run.name;
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = run.state === "done" ? `val ${loss(run.val_loss)}` : STATES[run.state];
    button.append(name, state);
    button.addEventListener("click", () => select(run.name));
    li.append(button);
    list.append(li);
  }
  $("queue").hidden = overview.queue.length === 0;
  $("queue").textContent = `Waiting to train: ${overview.queue.join(", ")}`;
  const menu = $("preset");
  if (menu.options.length === 1) for (const p of overview.presets) menu.append(new Option(`preset ${p}`, p));
}

function drawCurve(curve) {
  const svg = $("curve");
  svg.toggleAttribute("hidden", curve.length === 0); // an SVG element has no hidden property
  if (!curve.length) return;
  const [w, h, pad] = [600, 220, 36];
  const values = curve.flatMap((e) => [e.train_loss, e.val_loss]);
  const [lo, hi] = [Math.min(...values), Math.max(...values)];
  const last = curve[curve.length - 1].step || 1;
  const x = (step) => pad + ((w - 2 * pad) * step) / last;
  const y = (v) => h - pad - ((h - 2 * pad) * (v - lo)) / (hi - lo || 1);
  const line = (key) => curve.map((e) => `${x(e.step).toFixed(1)},${y(e[key]).toFixed(1)}`).join(" ");
  const text = (tx, ty, s) => `<text x="${tx}" y="${ty}">${s}</text>`;
  svg.innerHTML =
    `<polyline class="train" points="${line("train_loss")}"/><polyline class="val" points="${line("val_loss")}"/>` +
    text(4, y(hi) + 4, hi.toFixed(2)) + text(4, y(lo) + 4, lo.toFixed(2)) + text(w - pad - 40, h - 8, `step ${last}`) +
    `<text x="${pad}" y="16" class="train-label" style="fill:#4a6fa5">train</text>` +
    `<text x="${pad + 50}" y="16" class="val-label" style="fill:#c0504d">val</text>`;
}

function showRun(run) {
  $("run").hidden = false;
  $("run-name").textContent = run.name;
  const by = run.preset ? `preset ${run.preset}` : "the default recipe";
  $("run-state").textContent = `${STATES[run.state]}${run.items ? ` · ${run.items.toLocaleString()} items` : ""} · ${by}`;
  $("run-auto").textContent = run.auto || "";
  $("run-note").textContent = run.note || ""; // the list reads as a table: what is learnt, and how to keep a column
  $("run-note").hidden = !run.note;
  const training = run.state === "training";
  $("progress-row").hidden = !(training || run.state === "queued");
  $("progress").value = run.steps ? run.step / run.steps : 0;
  $("progress-text").textContent = run.state === "queued" ? "waiting for the training before it" :
    `step ${run.step.toLocaleString()} of ${(run.steps || 0).toLocaleString()}` +
    (run.seconds_left == null ? "" : ` · at most ${clock(run.seconds_left)} left`);
  $("run-error").hidden = !run.error;
  $("run-error").textContent = run.error || "";
  $("run-losses").textContent = run.val_loss == null ? "" :
    `train ${loss(run.train_loss)} · val ${loss(run.val_loss)} · test ${loss(run.test_loss)}` +
    (run.seconds == null ? "" : ` · ${clock(run.seconds)} of training`);
  $("cancel").hidden = !(training || run.state === "queued");
  $("resume").hidden = !run.resumable;
  $("resume").textContent = run.step ? "Resume" : "Start again";
  $("download-run").hidden = run.step === 0 && run.state !== "done";
  $("download-run").href = `/api/runs/${encodeURIComponent(run.name)}/download`;
  drawCurve(run.curve || []);
  const frame = $("generator");
  const key = run.can_generate ? `${run.name}@${run.seconds}` : null;
  if (key !== framed) {
    framed = key;
    frame.hidden = !key;
    if (key) frame.src = `/static/index.html?run=${encodeURIComponent(run.name)}`;
  }
}

async function refresh() {
  try {
    const overview = await call("GET", "/api/runs");
    if (!selected && overview.runs.length) selected = overview.runs[overview.runs.length - 1].name;
    showRuns(overview);
    if (selected) showRun(await call("GET", `/api/runs/${encodeURIComponent(selected)}`));
  } catch (error) {
    showError(error.message);
  }
}

function select(name) {
  selected = name;
  history.replaceState(null, "", `?run=${encodeURIComponent(name)}`);
  refresh();
}

$("new").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const file = $("upload").files[0];
  const text = file ? await file.text() : $("list").value;
  const name = $("list-name").value || (file ? file.name : "list");
  const query = new URLSearchParams({ name });
  if ($("preset").value) query.set("preset", $("preset").value);
  $("train").disabled = true;
  try {
    const run = await call("POST", `/api/runs?${query}`, text, "text/plain; charset=utf-8");
    $("list").value = "";
    $("upload").value = "";
    $("list-name").value = "";
    select(run.name);
  } catch (error) {
    showError(error.message);
  } finally {
    $("train").disabled = false;
  }
});

for (const action of ["cancel", "resume"]) {
  $(action).addEventListener("click", async () => {
    showError("");
    try {
      showRun(await call("POST", `/api/runs/${encodeURIComponent(selected)}/${action}`));
    } catch (error) {
      showError(error.message);
    }
  });
}

refresh();
setInterval(refresh, 1000);
