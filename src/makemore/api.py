"""The Python API: train a run, load one, and what a run can do (makemore.Run).

    import makemore
    run = makemore.train("my_list.txt", preset="fast", out="runs/mine")   # or model=..., **settings
    run = makemore.load("runs/mine")
    run.generate(20, temperature=0.8, prefix="ma")
    run.evaluate("val")
"""

from __future__ import annotations

import dataclasses

from makemore.config import ListStats, RunSpec, TrainConfig, auto_note, auto_recipe, on_gpu, preset_path, read_config, resolve_run
from makemore.data import Corpus
from makemore.errors import ConfigError, UserError
from makemore.run import Run, load_run, make_ensemble, new_training


def resolve(data=None, *, preset: str | None = None, config=None, model: str | None = None, **settings) -> RunSpec:
    """What train() would train, each field resolved and checked: the data, the model, its options and the
    training settings (a RunSpec). With no preset, config or model it is the auto recipe, chosen from the list's
    own statistics (so the data is read); otherwise the data is not read."""
    if preset is not None and config is not None:
        raise ConfigError("preset", "give it or {config}, not both", mentions=("config",))
    path = preset_path(preset) if preset is not None else config
    given = dict(settings, data=data, model=model)
    doc = read_config(path) if path is not None else {}
    if "members" in doc:
        return resolve_members(doc, path, given)
    if path is not None or model is not None:
        return resolve_run(doc, path, given)
    base = resolve_run({}, None, given)  # the data and how to read it, and the given fields checked
    if not base.data:
        raise ConfigError("data", "no data given: a registered data set (names, spanish-places, english-words) or a "
                                  "text file with one item per line")
    corpus = Corpus.load_many(base.data, condition=base.condition, ascii=base.ascii)
    stats = ListStats.of(corpus)
    spec = resolve_run(auto_recipe(stats, gpu=on_gpu(settings.get("device") or "auto")), None, given)
    return dataclasses.replace(spec, note=auto_note(stats, spec), corpus=corpus)


def resolve_members(doc: dict, path, given: dict) -> RunSpec:
    """An ensemble recipe: each [[members]] table resolved as resolve() resolves one run, with the given settings
    over it. Member i (from 0) trains with seed + i (seed: the given one, or 42), unless it sets its own and
    none is given, so that one seed names a whole ensemble."""
    given = {k: v for k, v in given.items() if v is not None}
    if given.pop("model", "ensemble") != "ensemble":
        raise ConfigError("model", f"{path} is an ensemble recipe ([[members]]); give no model")
    if given.pop("condition", None):
        raise ConfigError("condition", "an ensemble's members are not conditioned")
    data = given.pop("data", None) or doc.get("data")
    ascii = given.pop("ascii", None) or doc.get("ascii", False)
    seed = given.pop("seed", None)
    members = []
    for i, entry in enumerate(doc["members"]):
        entry = dict(entry)
        kind = dict(preset=entry.pop("preset", None), model=entry.pop("model", None))
        member_seed = seed + i if seed is not None else entry.pop("seed", TrainConfig.seed + i)
        try:
            members.append(resolve(data, **kind, **{**entry, **given, "seed": member_seed, "ascii": ascii or None}))
        except ConfigError as e:
            if e.field in entry:  # the file's value, not a flag's
                raise UserError(f"{path}: [[members]] {i + 1}: {e.render(str)}") from None
            raise
    first = members[0]
    return RunSpec(first.data, "ensemble", {}, TrainConfig(seed=first.train.seed), ascii=first.ascii,
                   members=tuple(members), weights=tuple(doc.get("weights", ())))


def train(data=None, *, preset: str | None = None, config=None, model: str | None = None, out=None,
          verbose: bool = True, callbacks=(), **settings) -> Run:
    """Train a model on a list of words and return the trained run (also written to its run folder).

    data: a registered data set ("names", "spanish-places"), a text file with one item per line, or a list of
        them (with condition="file", each file is a class).
    preset: a shipped recipe (makemore.presets()); config: a TOML run description; model: a model's name
        (makemore.MODELS). Without them: the auto recipe, chosen from the list (makemore.resolve says what).
        A preset or config with [[members]] (the best preset) trains each member run and then their ensemble.
    settings: any training field (steps, batch_size, lr, optimizer, schedule, weight_decay, seed, device, ...),
        any option of the model (n_embd, n_hidden, dropout, ...), condition or ascii; they override the preset
        or config. A bad value raises makemore.ConfigError naming the field.
    out: the run folder (default: runs/<data>, numbered if taken); an existing run is never overwritten.
    verbose: print what it trains, a progress bar and the evaluations. callbacks: fn(trainer, event) functions
        called at each 'step', 'log' and 'eval'.
    """
    spec = resolve(data, preset=preset, config=config, model=model, **settings)
    return new_training(spec, out).run(callbacks, verbose=verbose)


def load(folder, device: str = "cpu") -> Run:
    """A trained run from its folder, ready to generate, evaluate and serve (device: cpu, cuda or auto)."""
    return load_run(folder, device=device)


def ensemble(runs, out=None, weights=None) -> Run:
    """Trained runs (of any families, on the same data) as one run whose next-character distribution is their
    weighted mixture (uniform by default): it samples, scores, evaluates and serves as any run. It is written to
    out (default: runs/ensemble, numbered if taken), with its val and train loss and each member's."""
    return make_ensemble(list(runs), out, weights)
