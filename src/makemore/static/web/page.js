// The exported page's forms, over makemore.js: generate with the controls, score words.
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

const number = (id) => ($(id).value === "" ? null : Number($(id).value));

function options() {
  const o = {
    temperature: number("temperature") ?? 1, top_k: number("top_k"), top_p: number("top_p"), prefix: $("prefix").value,
    min_len: number("min_len") ?? 0, max_len: number("max_len") ?? undefined, novel_only: $("novel_only").checked,
    unique: $("unique").checked, list_style: $("list_style").checked,
  };
  if (!(o.temperature > 0)) throw new Error("temperature: expected a number above 0");
  if (o.top_p != null && !(o.top_p > 0 && o.top_p <= 1)) throw new Error("top_p: expected a number in (0, 1]");
  if (o.max_len !== undefined && o.max_len < Math.max(o.min_len, [...o.prefix].length))
    throw new Error("max_len: below the least length or the prefix's");
  model.encode(o.prefix); // unknown characters: one line, naming the character
  return o;
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  showError("");
  try {
    const seed = number("seed");
    const random = seed == null ? Math.random : makemore.seeded(seed);
    const started = performance.now();
    const result = model.generate(number("n") ?? 20, options(), random);
    const seconds = (performance.now() - started) / 1000;
    const list = $("names");
    list.replaceChildren(...result.names.map((n) => {
      const li = document.createElement("li");
      li.textContent = n.name;
      li.title = `log-probability ${n.logprob.toFixed(2)}`;
      return li;
    }));
    $("stats").textContent = `${result.names.length} of ${result.drawn} drawn in ${seconds.toFixed(2)} s` +
      (result.complete ? "" : " (only these passed the filters in time)");
    $("results").hidden = false;
  } catch (error) {
    showError(error.message);
  }
});

$("score-form").addEventListener("submit", (event) => {
  event.preventDefault();
  showError("");
  try {
    const words = $("words").value.split("\n").map((s) => s.trimEnd()).filter((s) => s);
    const body = $("scores").tBodies[0];
    body.replaceChildren();
    for (const s of words.map((w) => model.score(w))) {
      const row = body.insertRow();
      row.insertCell().textContent = s.word;
      row.insertCell().textContent = s.logprob.toFixed(4);
      row.insertCell().textContent = s.mean.toFixed(4);
    }
    $("scores").hidden = false;
  } catch (error) {
    showError(error.message);
  }
});

try {
  model = new makemore.Model(window.MAKEMORE_MODEL, window.MAKEMORE_MISSING);
  const m = model.meta, val = m.val == null ? "" : `, val loss ${m.val.toFixed(4)}`;
  $("model-info").textContent = `${m.model} from ${m.run}${val}; ${m.known.length.toLocaleString()} names in its list`;
} catch (error) {
  $("model-info").textContent = "";
  $("form").hidden = true;
  showError(`cannot load the model: ${error.message}`);
}
