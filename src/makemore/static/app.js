// The page: the forms post to /api/generate, /api/next and /api/score; no build step. In the workspace it shows
// one of its runs (index.html?run=NAME) and posts to /api/runs/NAME/... instead.
"use strict";

const $ = (id) => document.getElementById(id);
const RUN = new URLSearchParams(location.search).get("run");
const API = RUN ? `/api/runs/${encodeURIComponent(RUN)}` : "/api";
let shown = []; // the names on show, for the downloads

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

async function loadModel() {
  const info = await (await fetch(`${API}/model`)).json();
  const val = info.val_loss == null ? "" : `, val loss ${info.val_loss.toFixed(4)}`;
  $("model-info").textContent =
    `${info.model} on ${info.data}: ${info.params.toLocaleString()} parameters${val}, ${info.items.toLocaleString()} items`;
  if (info.classes.length) {
    for (const c of info.classes) $("class").append(new Option(c, c));
    $("class-label").hidden = false;
  }
}

const lines = (id) => $(id).value.split("\n").map((s) => s.trimEnd()).filter((s) => s);

function request() {
  const body = {
    n: Number($("n").value),
    temperature: Number($("temperature").value),
    prefix: $("prefix").value,
    novel_only: $("novel_only").checked,
    unique: $("unique").checked,
    list_style: $("list_style").checked,
    exclude: lines("exclude"),
  };
  for (const id of ["top_p", "min_len", "max_len", "min_distance"]) if ($(id).value !== "") body[id] = Number($(id).value);
  for (const id of ["ends_with", "pattern"]) if ($(id).value !== "") body[id] = $(id).value;
  if ($("contains").value !== "") body.contains = [$("contains").value];
  if (!$("class-label").hidden) body.class = $("class").value;
  return body;
}

function showNames(data) {
  const list = $("names");
  list.replaceChildren();
  shown = data.names;
  for (const item of data.names) {
    const li = document.createElement("li");
    li.textContent = item.name;
    li.title = `log-probability ${item.logprob.toFixed(2)}` + (item.known ? " — in the training data" : "");
    if (item.known) li.classList.add("known");
    list.append(li);
  }
  const found = data.complete ? "" : ` — only ${data.names.length} passed the filters in time`;
  const novelty = data.novelty == null ? "none ended in time" : `novelty ${(100 * data.novelty).toFixed(1)}%`;
  $("stats").textContent = `${novelty} of ${data.drawn} drawn${found}`;
  const g = data.guidance;
  $("guidance").hidden = !(g && g.mode === "guided");
  if (g && g.mode === "guided") {
    $("guidance").textContent = `A rare shape (${g.found} of ${g.tried} names drawn matched it): these were drawn ` +
      `guided by it and corrected toward the model's own by ${g.corrected} (${g.candidates} candidates, ` +
      `${g.effective} effective; ` + (g.probability == null ? "too few to estimate its probability)." :
      `its probability about ${g.probability.toPrecision(2)}).`);
  }
  $("results").hidden = false;
}

function showNext(data) {
  const chart = $("chart");
  chart.replaceChildren();
  const top = data.next.slice(0, 15);
  const max = Math.max(...top.map((c) => c.p));
  for (const c of top) {
    const col = document.createElement("div");
    col.className = "col";
    col.title = `${c.end ? "end" : c.char}: ${(100 * c.p).toFixed(1)}%`;
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.height = `${(100 * c.p) / max}%`;
    const label = document.createElement("span");
    label.className = "lab";
    label.textContent = c.end ? "⏎" : c.char === " " ? "␣" : c.char;
    col.append(fill, label);
    chart.append(col);
  }
  $("next-prefix").textContent = data.prefix;
  $("next-section").hidden = false;
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  $("generate").disabled = true;
  try {
    const body = request();
    const [names, next] = await Promise.all([
      post(`${API}/generate`, body),
      post(`${API}/next`, { prefix: body.prefix, ...(body.class ? { class: body.class } : {}) }),
    ]);
    showNames(names);
    showNext(next);
  } catch (error) {
    showError(error.message);
  } finally {
    $("generate").disabled = false;
  }
});

function showScores(data) {
  const body = $("scores").tBodies[0];
  body.replaceChildren();
  for (const s of data.scores) {
    const row = body.insertRow();
    const chars = [...s.word, "⏎"];
    row.insertCell().textContent = s.word;
    row.insertCell().textContent = s.logprob.toFixed(2);
    row.insertCell().textContent = s.mean.toFixed(3);
    row.insertCell().textContent = chars.map((c, i) => `${c} ${s.surprisal[i].toFixed(1)}`).join("  ");
  }
  $("scores").hidden = false;
}

$("score-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  try {
    const body = { words: lines("words") };
    if (!$("class-label").hidden) body.class = $("class").value;
    showScores(await post(`${API}/score`, body));
  } catch (error) {
    showError(error.message);
  }
});

$("copy").addEventListener("click", async () => {
  const text = [...$("names").children].map((li) => li.textContent).join("\n");
  try {
    await navigator.clipboard.writeText(text);
    $("copy").textContent = "Copied";
  } catch {
    $("copy").textContent = "Copy failed";
  }
  setTimeout(() => ($("copy").textContent = "Copy"), 1500);
});

function download(filename, text, type) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

const csvField = (s) => (/[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
const stem = RUN || "names";
$("download-txt").addEventListener("click", () =>
  download(`${stem}-names.txt`, shown.map((n) => n.name).join("\n") + "\n", "text/plain"));
$("download-csv").addEventListener("click", () =>
  download(`${stem}-names.csv`, "name,logprob,in_list\n" +
    shown.map((n) => `${csvField(n.name)},${n.logprob.toFixed(4)},${n.known}`).join("\n") + "\n", "text/csv"));

loadModel().catch((error) => showError(`cannot load the model: ${error.message}`));
