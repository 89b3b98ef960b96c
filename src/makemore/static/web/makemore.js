// An exported makemore run in the browser, with no server and no library: the recurrent networks' step (RNN, GRU
// or LSTM, computed as torch computes it, in float64; one network, or several mixed at their weights), the n-gram
// mixed in as the run mixes it, sampling with the controls of `makemore sample`, and scores. It reads
// window.MAKEMORE_MODEL (model.js).
"use strict";

const FORMAT = "makemore-web/1";
const LETTERS = new Set(["upper", "lower", "letter"]); // style.py's WORDY: the kinds of a letter

function floats(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer); // little-endian float32, as written
}

// A problem with model.js in one line: a folder that is not this export, or one that was damaged. missing: the
// script could not be read at all (a script that could, but did not run to its end, is damaged).
function checkModel(m, missing = false) {
  if (missing) return "no model.js here: this folder is not a makemore web export";
  if (!m || typeof m !== "object") return "model.js is cut short or damaged (it did not define the model): export the run again";
  if (m.format !== FORMAT) return `model.js is ${JSON.stringify(m.format)}, not ${FORMAT}: not a makemore web export this page reads`;
  for (const key of ["cell", "n_layers", "n_hidden", "vocab", "boundary", "networks", "network_weights", "known", "sampling"]) {
    if (m[key] === undefined || m[key] === null) return `model.js has no ${key}: the export is damaged`;
  }
  if (!["rnn", "gru", "lstm"].includes(m.cell)) return `model.js: unknown cell ${JSON.stringify(m.cell)}`;
  return null;
}

class Model {
  constructor(m, missing = false) {
    const problem = checkModel(m, missing);
    if (problem) throw new Error(problem);
    this.meta = m;
    this.V = m.vocab.length;
    this.H = m.n_hidden;
    this.L = m.n_layers;
    this.cell = m.cell;
    this.gates = { rnn: 1, gru: 3, lstm: 4 }[m.cell];
    this.nets = m.networks.map((weights) => {
      const w = {};
      for (const [name, t] of Object.entries(weights)) {
        const data = floats(t.data);
        if (data.length !== t.shape.reduce((a, b) => a * b, 1)) throw new Error(`model.js: the weights ${name} are damaged`);
        w[name] = { shape: t.shape, data };
      }
      return w;
    });
    this.netWeights = m.network_weights;
    this.E = this.nets[0]["embedding.weight"].shape[1];
    this.stoi = new Map(m.vocab.map((ch, i) => [ch, i]).filter(([, i]) => i !== m.boundary));
    this.known = new Set(m.known);
    const style = m.sampling.style;
    this.style = style ? {
      ...style, pairs: new Set(style.pairs.map(([a, b]) => `${a}\u0000${b}`)),
      contexts: new Map(style.contexts.map(([a, b, after]) => [`${a}\u0000${b}`, new Set(after)])),
      finals: new Set(style.finals || []),
      never_first: new Set(style.never_first || []),
    } : null;
    this.share = m.share || 0;
    this.ngram = m.ngram ? this.tables(m.ngram) : null;
  }

  // The n-gram's orders as maps: the context's tokens -> {counts: Map(next -> count), total, kinds}.
  tables(ngram) {
    const orders = ngram.orders.map((rows, k) => {
      const map = new Map();
      for (const row of rows) {
        const key = row.slice(0, k).join(",");
        let entry = map.get(key);
        if (!entry) map.set(key, (entry = { counts: new Map(), total: 0, kinds: 0 }));
        entry.counts.set(row[k], row[k + 1]);
        entry.total += row[k + 1];
        entry.kinds += 1;
      }
      return map;
    });
    return { context: ngram.context, discount: ngram.discount, orders };
  }

  // Each network's state at the start
  zeroState() {
    const layer = () => new Float64Array(this.H);
    return this.nets.map(() => ({ h: Array.from({ length: this.L }, layer), c: this.cell === "lstm" ? Array.from({ length: this.L }, layer) : null }));
  }

  // out[i] = sum_j W[i, j] x[j] for the rows of W (rows x cols, row-major)
  affine(W, x, rows) {
    const cols = x.length, out = new Float64Array(rows);
    for (let i = 0; i < rows; i++) {
      let s = 0;
      const base = i * cols;
      for (let j = 0; j < cols; j++) s += W[base + j] * x[j];
      out[i] = s;
    }
    return out;
  }

  // One step of a network (its weights w): (token, state) -> [log-probabilities of the next character, new state]
  step(w, token, state) {
    const H = this.H, E = this.E, sig = (v) => 1 / (1 + Math.exp(-v));
    let x = Float64Array.from(w["embedding.weight"].data.subarray(token * E, (token + 1) * E));
    const next = { h: [], c: state.c ? [] : null };
    for (let l = 0; l < this.L; l++) {
      const gi = this.affine(w[`rnn.weight_ih_l${l}`].data, x, this.gates * H), gh = this.affine(w[`rnn.weight_hh_l${l}`].data, state.h[l], this.gates * H);
      const bi = w[`rnn.bias_ih_l${l}`].data, bh = w[`rnn.bias_hh_l${l}`].data, h = new Float64Array(H);
      if (this.cell === "rnn") {
        for (let i = 0; i < H; i++) h[i] = Math.tanh(gi[i] + bi[i] + gh[i] + bh[i]);
      } else if (this.cell === "gru") { // gates r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        for (let i = 0; i < H; i++) {
          const r = sig(gi[i] + bi[i] + gh[i] + bh[i]), z = sig(gi[H + i] + bi[H + i] + gh[H + i] + bh[H + i]);
          const n = Math.tanh(gi[2 * H + i] + bi[2 * H + i] + r * (gh[2 * H + i] + bh[2 * H + i]));
          h[i] = (1 - z) * n + z * state.h[l][i];
        }
      } else { // gates i, f, g, o
        const c = new Float64Array(H);
        for (let i = 0; i < H; i++) {
          const a = (k) => gi[k * H + i] + bi[k * H + i] + gh[k * H + i] + bh[k * H + i];
          c[i] = sig(a(1)) * state.c[l][i] + sig(a(0)) * Math.tanh(a(2));
          h[i] = sig(a(3)) * Math.tanh(c[i]);
        }
        next.c.push(c);
      }
      next.h.push(h);
      x = h;
    }
    const logits = this.affine(w["head.weight"].data, x, this.V), b = w["head.bias"].data;
    for (let i = 0; i < this.V; i++) logits[i] += b[i];
    return [logSoftmax(logits), next];
  }

  // The n-gram's next-character distribution after history (the tokens written): interpolated Kneser-Ney
  ngramProbs(history) {
    const { context, discount: D, orders } = this.ngram, V = this.V;
    const window = [...new Array(context).fill(this.meta.boundary), ...history].slice(history.length);
    let p = new Float64Array(V).fill(1 / V);
    for (let k = 0; k <= context; k++) {
      const entry = orders[k].get(window.slice(context - k).join(","));
      if (!entry) continue;
      const q = new Float64Array(V);
      for (let w = 0; w < V; w++) q[w] = (D * entry.kinds * p[w]) / entry.total;
      for (const [w, count] of entry.counts) q[w] += Math.max(count - D, 0) / entry.total;
      p = q;
    }
    return p;
  }

  // The run's next-character log-probabilities: the networks' (mixed at their weights), with the n-gram mixed in
  // at its share; and the networks' new states
  next(token, states, history) {
    const steps = this.nets.map((w, k) => this.step(w, token, states[k])), newStates = steps.map(([, st]) => st);
    let logp = steps[0][0];
    if (steps.length > 1) {
      logp = logp.map((_, c) => Math.log(steps.reduce((sum, [l], k) => sum + this.netWeights[k] * Math.exp(l[c]), 0)));
    }
    if (!this.ngram) return [logp, newStates];
    const p = this.ngramProbs(history), s = this.share;
    return [logp.map((l, w) => Math.log((1 - s) * Math.exp(l) + s * p[w])), newStates];
  }

  encode(word) {
    const tokens = [];
    for (const ch of word.normalize("NFC")) { // composed, as makemore reads the list
      if (!this.stoi.has(ch)) throw new Error(`character ${JSON.stringify(ch)} of ${JSON.stringify(word)} is not in the model's vocabulary`);
      tokens.push(this.stoi.get(ch));
    }
    return tokens;
  }

  // A word's log-probability and the surprisal (-log p) of each character and of the end, as makemore score
  score(word) {
    const tokens = [...this.encode(word), this.meta.boundary], surprisal = [];
    let state = this.zeroState(), last = this.meta.boundary, history = [], logprob = 0;
    for (const t of tokens) {
      const [logp, next] = this.next(last, state, history);
      surprisal.push(-logp[t]);
      logprob += logp[t];
      state = next;
      last = t;
      history.push(t);
    }
    return { word, logprob, mean: logprob / tokens.length, surprisal };
  }

  // One name drawn with the options, or null (longer than max_len, or ending in whitespace). Options: temperature,
  // top_k, top_p, prefix, min_len, max_len; random() gives uniform numbers in [0, 1).
  draw(o, random) {
    const B = this.meta.boundary, prefix = this.encode(o.prefix || ""), maxLen = o.max_len ?? this.meta.sampling.max_len;
    let state = this.zeroState(), last = B, history = [], logprob = 0;
    for (let t = 0; t <= maxLen; t++) {
      const [logp, next] = this.next(last, state, history);
      let ix;
      if (t < prefix.length) ix = prefix[t];
      else {
        const masked = Float64Array.from(logp);
        if (t < (o.min_len || 0)) masked[B] = -Infinity;
        ix = pick(masked, o.temperature ?? 1, o.top_k, o.top_p, random);
      }
      logprob += logp[ix];
      if (ix === B) {
        const name = history.map((i) => this.meta.vocab[i]).join("");
        return /\s$/.test(name) ? null : { name, logprob }; // whitespace at the end: no list holds such an item
      }
      if (t >= maxLen) return null; // a character past max_len: drawn again, not cut
      state = next;
      last = ix;
      history.push(ix);
    }
    return null;
  }

  // Whether a name is written as the list writes its items, as makemore's style.py decides: every pair of kinds of
  // character side by side (the start and the end among them) is one the list has, a capital inside a word that few
  // items have follows what it follows in them, no letter that ends every word it is in is before a letter, no letter
  // that starts none is first in a word, no mark is there more often than in any item, and brackets that every item
  // closes are closed.
  fits(name) {
    const s = this.style;
    if (!s || name === "") return true;
    const chars = [...name], kinds = ["start", ...chars.map((ch) => s.kinds[ch] ?? ch), "end"];
    for (let i = 1; i < kinds.length; i++) {
      const pair = `${kinds[i - 1]}\u0000${kinds[i]}`, after = s.contexts.get(pair);
      if (!s.pairs.has(pair)) return false;
      if (after && !after.has(chars.slice(Math.max(0, i - 3), i - 1).join(""))) return false; // chars[i - 2] and the one before
      if (s.finals.has(chars[i - 2]) && LETTERS.has(kinds[i])) return false; // a letter that ends a word, before a letter
      if (s.never_first.has(chars[i - 1]) && (kinds[i - 1] === "start" || kinds[i - 1] === "space")) return false; // first
    }
    for (const [mark, most] of Object.entries(s.most)) if (chars.filter((ch) => ch === mark).length > most) return false;
    for (const [open, close] of s.brackets) {
      let depth = 0;
      for (const ch of chars) {
        depth += (ch === open) - (ch === close);
        if (depth < 0) return false;
      }
      if (depth !== 0) return false;
    }
    return true;
  }

  // n names that pass the filters (written like the list, only new names, each once), drawn until found or
  // `seconds` pass
  generate(n, o, random, seconds = 5) {
    const names = [], seen = new Set(), until = performance.now() + 1000 * seconds;
    let drawn = 0;
    while (names.length < n && performance.now() < until) {
      const got = this.draw(o, random);
      drawn++;
      if (!got || (got.name.length < (o.min_len || 0))) continue;
      if (o.list_style !== false && !this.fits(got.name)) continue;
      if (o.novel_only && this.known.has(got.name)) continue;
      if (o.unique && seen.has(got.name)) continue;
      seen.add(got.name);
      names.push(got);
    }
    return { names, drawn, complete: names.length === n };
  }
}

function logSoftmax(x) {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  let sum = 0;
  for (const v of x) sum += Math.exp(v - max);
  const log = max + Math.log(sum);
  return x.map((v) => v - log);
}

// A character from log-probabilities, with temperature, then top-k, then top-p (nucleus) as makemore applies them
function pick(logp, temperature, topK, topP, random) {
  const V = logp.length, order = [...logp.keys()].sort((a, b) => logp[b] - logp[a]);
  const keep = new Uint8Array(V);
  const k = topK ? Math.min(topK, V) : V;
  const kth = logp[order[k - 1]];
  for (let i = 0; i < V; i++) keep[i] = logp[i] >= kth && logp[i] > -Infinity ? 1 : 0;
  const scaled = logp.map((l, i) => (keep[i] ? l / temperature : -Infinity));
  let probs = softmax(scaled);
  if (topP != null && topP < 1) { // the likeliest characters whose mass reaches top_p; the first always stays
    let mass = 0;
    const nucleus = new Uint8Array(V);
    for (const i of order) {
      if (mass >= topP) break;
      if (!keep[i]) continue;
      nucleus[i] = 1;
      mass += probs[i];
    }
    probs = softmax(scaled.map((l, i) => (nucleus[i] ? l : -Infinity)));
  }
  let u = random(), i = 0;
  for (; i < V - 1; i++) {
    if (u < probs[i]) break;
    u -= probs[i];
  }
  while (probs[i] === 0) i--; // rounding at the top: the last possible character
  return i;
}

function softmax(x) {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  const e = x.map((v) => (v === -Infinity ? 0 : Math.exp(v - max)));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

// A seeded generator (mulberry32): the same seed gives the same names
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

window.makemore = { Model, checkModel, seeded, FORMAT };
