"""Ensembles: trained runs as one run whose next-character distribution is the mixture of theirs. A run that is
itself a mixture (a network and an n-gram, an ensemble) gives its parts, and n-grams counted alike are one; the
weights are chosen on val unless given, alike parts (one family, one config) sharing one weight."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from makemore import checkpoint, models
from makemore.data import SPLITS, examples, sequences
from makemore.errors import ConfigError, UserError
from makemore.files import write_json, write_jsonl
from makemore.models.base import target_probs
from makemore.models.ensemble import grouped_mixture
from makemore.run import Run, load_run
from makemore.runfolder import CHECKPOINT, CONFIG, METRICS, SUMMARY, new_run_folder
from makemore.train import evaluate


def make_ensemble(runs, out=None, weights=None) -> Run:
    """The runs (Run objects, or their folders) as one ensemble run (the mixture of their next-character
    distributions), written to the run folder out: its losses, and each member's, in summary.json. Without
    weights, the runs' parts (a network + n-gram run gives both; n-grams counted alike are one) are mixed with
    weights chosen on val. The runs share their data, so their split, and are not conditioned."""
    runs = [r if isinstance(r, Run) else load_run(r) for r in runs]
    if not runs:
        raise ConfigError("members", "give at least one run")
    return write_ensemble(runs, new_run_folder(out, ["ensemble"]), weights)


def parts(runs: list[Run]) -> list[tuple[Run, str, torch.nn.Module]]:
    """The runs' models as components of a mixture, each (its run, its registry name, the module): a mixture's
    members in its place, and one n-gram for those counted alike (the same list's, with the same context)."""
    found = []
    for run in runs:
        stack = [(run.model_name, run.model)]
        while stack:
            name, model = stack.pop(0)
            if isinstance(model, models.Interpolated):
                network = name.removesuffix("+ngram")
                stack[:0] = [*((network, m) for m in model.members[:-1]), ("ngram", model.members[-1])]
            elif isinstance(model, models.Ensemble):
                stack[:0] = [(m["model"], module) for m, module in zip(model.config.members, model.members)]
            elif not any(isinstance(model, models.NGram) and same_counts(model, other) for _, _, other in found):
                found.append((run, name, model))
    return found


def same_counts(ngram, other) -> bool:
    return (isinstance(other, models.NGram) and ngram.config == other.config
            and all(torch.equal(a, b) for a, b in zip(ngram.state_dict().values(), other.state_dict().values())))


def alike(members) -> list[list[int]]:
    """The members (run, registry name, module) in groups of one family and one config, such as the networks of
    runs of one recipe: a list of each group's indices."""
    groups = {}
    for i, (_, name, model) in enumerate(members):
        groups.setdefault((name, json.dumps(dataclasses.asdict(model.config), sort_keys=True)), []).append(i)
    return list(groups.values())


def write_ensemble(runs: list[Run], folder: Path, weights=None) -> Run:
    first = runs[0]
    for run in runs[1:]:
        if run.corpus.items != first.corpus.items:
            raise UserError(f"{run.folder}: trained on other data than {first.folder}; an ensemble's runs share "
                            "their data and its split")
    for run in runs:
        if run.corpus.classes:
            raise UserError(f"{run.folder}: a conditioned run cannot be a member of an ensemble")
    start = time.perf_counter()
    members = [(r, r.model_name, r.model) for r in runs] if weights else parts(runs)
    val = sequences(first.corpus, "val")
    if not weights:  # chosen on val: test is the figure to compare
        weights = grouped_mixture(torch.stack([target_probs(m, val) for _, _, m in members], dim=1), alike(members))[1]
    config = models.EnsembleConfig(first.vocab.size, first.corpus.longest + 1,
                                   [{"model": name, "config": dataclasses.asdict(m.config)} for _, name, m in members],
                                   [float(w) for w in weights])
    model = models.Ensemble(config, [m for _, _, m in members]).eval()
    losses = {split: evaluate(model, examples(model, first.corpus, split)) for split in SPLITS}
    folder.mkdir(parents=True, exist_ok=True)
    name = "ensemble"
    contents = checkpoint.state(name, model, first.corpus, first.train_config)
    checkpoint.save(folder / CHECKPOINT, contents)
    write_json(folder / CONFIG, {"data": first.corpus.source, "model": name, "model_config": dataclasses.asdict(config),
                                 "members": [str(r.folder) for r in runs]})
    described = [{"run": str(r.folder), "model": name, "params": models.num_params(m), "weight": w,
                  "val_loss": evaluate(m, examples(m, first.corpus, "val"))} for (r, name, m), w in zip(members, weights)]
    summary = {"model": name, "params": models.num_params(model), "step": 0, "train_loss": losses["train"],
               "val_loss": losses["val"], "test_loss": losses["test"], "best_step": 0, "last_val_loss": losses["val"],
               "stopped": None, "time_s": round(time.perf_counter() - start, 3), "tokens_per_s": None,
               "members": described}
    write_json(folder / SUMMARY, summary)
    write_jsonl(folder / METRICS, [{"step": 0, "train_loss": losses["train"], "val_loss": losses["val"]}])
    return Run(folder, name, model, first.corpus, first.train_config, contents, summary)
