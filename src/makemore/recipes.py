"""Resolving what a run is from what was asked: a preset, a config file, a model, or nothing (the auto recipe),
with settings over them; an ensemble recipe's members each resolved as a run."""

from __future__ import annotations

from makemore.auto import AUTO_MODEL, resolve_auto
from makemore.config import RunSpec, TrainConfig, preset_path, read_config, resolve_run
from makemore.data import Corpus
from makemore.errors import ConfigError, UserError


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
    # the data and how to read it, and the given fields checked against the auto recipe's model
    base = resolve_run({"model": AUTO_MODEL}, None, given)
    if not base.data:
        raise ConfigError("data", "no data given: a registered data set (names, spanish-places, english-words) or a "
                                  "text file with one item per line")
    return resolve_auto(Corpus.load_many(base.data, condition=base.condition, ascii=base.ascii), given)


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
