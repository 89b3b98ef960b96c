"""Run descriptions: the training fields, the presets, TOML files, and their resolution into a RunSpec.

A run is described by layers, each overriding the one before: a TOML file or a shipped preset ([options] for
the model, [train] for training, and [cuda.options] / [cuda.train] when the run trains on a GPU), then the
values given by flags or Python keywords. Every value is checked against one table per field (TRAIN_FIELDS
here, models.OPTIONS for the models), which also makes the command line's flags.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import torch

from makemore import models
from makemore.data import Corpus
from makemore.errors import ConfigError, UserError
from makemore.fields import Field
from makemore.models.ensemble import check_weights

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("torch", "jax")

TRAIN_FIELDS = {
    "steps": Field(int, "optimisation steps", low=0, high=10**9, high_inclusive=True),
    "batch_size": Field(int, "examples per step: windows, or whole words for sequence models", low=0, high=10**6,
                        high_inclusive=True),
    "optimizer": Field(str, "optimizer", choices=OPTIMIZERS),
    "lr": Field(float, "learning rate", low=0),
    "schedule": Field(str, "step: x decay_factor from decay_at; cosine: down to lr x decay_factor; constant",
                      choices=SCHEDULES),
    "decay_at": Field(float, "step schedule: the share of the steps after which the lr decays", low=0, high=1),
    "decay_factor": Field(float, "the lr's last value, as a share of lr (step and cosine schedules)", low=0),
    "weight_decay": Field(float, "weight decay", low=0, low_inclusive=True),
    "seed": Field(int, "seed of the initial weights and the batches", low=0, low_inclusive=True, high=2**63 - 1,
                  high_inclusive=True),
    "device": Field(str, "where to train", choices=DEVICES),
    "eval_every": Field(int, "steps between whole-split evaluations; 0: as often as costs at most a tenth of the "
                             "training time", low=0, low_inclusive=True, high=10**9, high_inclusive=True),
    "patience": Field(int, "stop after this many evaluations without a lower val loss (0: never); the best model is "
                           "kept either way", low=0, low_inclusive=True, high=10**6, high_inclusive=True),
    "time_limit": Field(float, "stop after this many seconds of training (0: no limit); the best model is kept",
                        low=0, low_inclusive=True, high=10**7, high_inclusive=True),
    "ema": Field(float, "decay of an exponential moving average of the weights, evaluated beside them: the better "
                        "of the two is the evaluation's (0: none; e.g. 0.999)", low=0, low_inclusive=True, high=1),
    "teacher": Field(str, "a trained run (its folder) on the same data whose next-character distributions the model "
                          "learns too: distillation (empty: none)"),
    "distill": Field(float, "with a teacher: its distribution's share of each target, the true character's the rest",
                     low=0, low_inclusive=True, high=1, high_inclusive=True),
    "log_every": Field(int, "steps between the logged mean batch losses", low=0, high=10**9, high_inclusive=True),
    "checkpoint_every": Field(float, "seconds between checkpoints besides the evaluations' (0: at evaluations only): "
                                     "a kill loses at most this much training", low=0, low_inclusive=True, high=10**6,
                              high_inclusive=True),
    "backend": Field(str, "jax: the JAX/Flax port (hierarchical, conv; pip install makemore[jax])", choices=BACKENDS),
}


@dataclass
class TrainConfig:
    """The lecture's recipe by default: 200k steps of batch 32, SGD at 0.1 then 0.01 for the last quarter."""

    steps: int = 200_000
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.1
    schedule: str = "step"
    decay_at: float = 0.75
    decay_factor: float = 0.1
    weight_decay: float = 0.0
    seed: int = 42
    device: str = "auto"
    eval_every: int = 0  # 0: chosen by the trainer, from the sizes of the splits and the batch
    patience: int = 0
    time_limit: float = 0.0
    ema: float = 0.0
    teacher: str = ""
    distill: float = 0.5
    log_every: int = 1_000
    checkpoint_every: float = 60.0
    backend: str = "torch"

    def __post_init__(self):
        for name, field in TRAIN_FIELDS.items():
            setattr(self, name, field.check(name, getattr(self, name)))

    def lr_at(self, step: int) -> float:
        if self.schedule == "step":
            return self.lr if step < self.decay_at * self.steps else self.lr * self.decay_factor
        if self.schedule == "cosine":
            progress = step / max(self.steps - 1, 1)
            final = self.lr * self.decay_factor
            return final + 0.5 * (self.lr - final) * (1 + math.cos(math.pi * progress))
        return self.lr


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda, but no CUDA device is available here; use cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError("device", f"expected one of {', '.join(DEVICES)}, got {name!r}")
    return torch.device(name)


def on_gpu(device: str) -> bool:
    """Whether a run with this device setting trains on a GPU, where a config's [cuda.*] tables apply."""
    return resolve_device(device).type == "cuda"


# ----------------------------------------------------------------------------- files and presets

TOP_FIELDS = {  # a config file's top-level keys, beside data (a string or a list of strings)
    "model": Field(str, "the model", choices=tuple(models.MODELS)),
    "condition": Field(str, "file: each data file is a class to generate in", choices=("file",)),
    "ascii": Field(bool, "strip accents and tildes"),
}
TABLES = ("options", "train")


def presets() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in files("makemore").joinpath("presets").iterdir()
                  if p.name.endswith(".toml"))


def preset_path(name: str) -> Path:
    if name not in presets():
        raise ConfigError("preset", f"unknown preset {name!r}; presets: {', '.join(presets())}")
    return Path(str(files("makemore").joinpath("presets", f"{name}.toml")))


def read_toml(path: Path, field: str) -> dict:
    """A TOML file given as the setting `field` (config, space)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(field, f"{path}: no such file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"{path}: not valid TOML ({str(e).splitlines()[0]})") from None


def read_config(path: Path) -> dict:
    """A run's TOML description: data, model, condition, ascii; [options] for the model; [train] for training;
    and [cuda.options] / [cuda.train]. Unknown keys and wrong values are one-line errors naming the file and the
    key. [options] are checked when the run is resolved, against its model."""
    doc = read_toml(path, "config")
    for key, value in doc.items():
        if key in (*TABLES, "cuda"):
            if not isinstance(value, dict):
                raise UserError(f"{path}: [{key}] must be a table")
        elif key == "data":
            if not (isinstance(value, str) or isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise UserError(f"{path}: data must be a string or a list of strings")
        elif key == "members":
            check_members(path, value)
        elif key == "weights":
            if not (isinstance(value, list) and all(isinstance(w, (int, float)) for w in value)):
                raise UserError(f"{path}: weights must be a list of numbers, one per member")
        elif key in TOP_FIELDS:
            if TOP_FIELDS[key].type is bool and not isinstance(value, bool):
                raise UserError(f"{path}: {key} must be true or false")
            in_file(path, key, lambda: TOP_FIELDS[key].check(key, value))
        else:
            raise UserError(f"{path}: unknown key {key!r}; valid keys: "
                            f"{', '.join(['data', *TOP_FIELDS, '[options]', '[train]', '[cuda]', '[[members]]', 'weights'])}")
    if "members" in doc:
        if doc.get("model", "ensemble") != "ensemble" or any(k in doc for k in (*TABLES, "cuda", "condition")):
            raise UserError(f"{path}: a file with [[members]] describes an ensemble: only data, ascii, weights and "
                            "[[members]] go beside them")
        in_file(path, "weights", lambda: check_weights(doc.get("weights", []), len(doc["members"])))
    elif "weights" in doc:
        raise UserError(f"{path}: weights without [[members]]")
    for key, value in doc.get("cuda", {}).items():
        if key not in TABLES or not isinstance(value, dict):
            raise UserError(f"{path}: [cuda] holds only the tables [cuda.options] and [cuda.train], not {key!r}")
    for table, entries in (("train", doc.get("train", {})), ("cuda.train", doc.get("cuda", {}).get("train", {}))):
        for key, value in entries.items():
            check_train_value(path, table, key, value)
    return doc


MEMBER_KEYS = ("preset", "model")  # and any training field or model option


def check_members(path, members):
    """[[members]]: each member a run of its own, as train() takes it: a preset or a model (neither: the auto
    recipe) and any training field or model option; the options are checked when the member is resolved."""
    if not (isinstance(members, list) and members and all(isinstance(m, dict) for m in members)):
        raise UserError(f"{path}: members must be tables: [[members]], one per member run")
    for i, member in enumerate(members, 1):
        for key, value in member.items():
            where = f"[[members]] {i}"
            if key in MEMBER_KEYS:
                if not isinstance(value, str):
                    raise UserError(f"{path}: {where}: {key} must be a string")
            elif key in TRAIN_FIELDS:
                in_file(path, f"{where} {key}", lambda: TRAIN_FIELDS[key].check(key, value))
            elif key not in models.OPTIONS:
                raise UserError(f"{path}: {where}: unknown key {key!r}; valid keys: preset, model, a training field "
                                f"({', '.join(TRAIN_FIELDS)}) or a model option")
        if "preset" in member and "model" in member:
            raise UserError(f"{path}: [[members]] {i}: give preset or model, not both")


def in_file(path, where: str, check):
    """check(), with a ConfigError told as the file's: "exp.toml: [train] lr: expected ..."."""
    try:
        return check()
    except ConfigError as e:
        raise UserError(f"{path}: {where}: {e.message}") from None


def check_train_value(path, table: str, key: str, value):
    """A [train] entry as a file gives it: a known key and a value its field takes."""
    if key not in TRAIN_FIELDS:
        raise UserError(f"{path}: unknown key {key!r} in [{table}]; valid keys: {', '.join(TRAIN_FIELDS)}")
    return in_file(path, f"[{table}] {key}", lambda: TRAIN_FIELDS[key].check(key, value))


def check_file_option(path, table: str, model_name: str, key: str, value):
    """An [options] entry as a file gives it: an option of the model, a value the option takes."""
    if key not in models.options_of(model_name):
        raise UserError(f"{path}: unknown key {key!r} in [{table}] for model {model_name!r}; "
                        f"valid keys: {', '.join(models.options_of(model_name))}")
    return in_file(path, f"[{table}] {key}", lambda: models.check_option(model_name, key, value))


def to_toml(doc: dict) -> str:
    """A run config as TOML: the top keys, then [options], [train], [cuda.options] and [cuda.train]. Values are
    strings, numbers, booleans or lists of strings; json's spelling of a string is valid TOML."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and not math.isfinite(v):
            return "nan" if v != v else f"{'-' if v < 0 else ''}inf"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v, ensure_ascii=False)

    lines = [f"{k} = {value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    tables = [(t, doc.get(t)) for t in TABLES] + [(f"cuda.{t}", doc.get("cuda", {}).get(t)) for t in TABLES]
    for name, table in tables:
        if table:
            lines += ["", f"[{name}]", *(f"{k} = {value(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- resolution


@dataclass
class RunSpec:
    """What a run is, resolved: the data, the model and its options, the training settings."""

    data: list[str]
    model_name: str
    options: dict
    train: TrainConfig
    condition: str | None = None
    ascii: bool = False
    gpu: bool = False  # whether it was resolved for a GPU: the file's [cuda.*] tables applied
    note: str | None = None  # what the auto recipe chose, in a line
    corpus: Corpus | None = dataclasses.field(default=None, repr=False, compare=False)  # loaded to choose it
    members: tuple = ()  # an ensemble recipe's runs (RunSpecs), trained in turn and then mixed
    weights: tuple = ()  # their mixture weights (uniform when empty)

    def override(self, values: dict) -> RunSpec:
        """This run with training fields and model options set to values ({"lr": 0.01, "n_embd": 32}), after
        every table of the file: what flags, Python keywords and a sweep's trial values do."""
        options, train = dict(self.options), dataclasses.asdict(self.train)
        for key, value in values.items():
            if key in TRAIN_FIELDS:
                train[key] = value
            elif key in models.OPTIONS:
                options[key] = models.check_option(self.model_name, key, value)
            else:
                raise ConfigError(key, f"no such setting; training: {', '.join(TRAIN_FIELDS)}; model "
                                       f"{self.model_name!r}: {', '.join(models.options_of(self.model_name))}")
        return dataclasses.replace(self, options=options, train=TrainConfig(**train))


def resolve_run(doc: dict, path=None, given: dict | None = None) -> RunSpec:
    """A config file's run (doc, from read_config; {} for none) with the values in `given` (by field name: data,
    model, condition, ascii, any training field or model option) overriding it."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    data = given.pop("data", None) or doc.get("data", [])
    data = [str(data)] if isinstance(data, (str, Path)) else [str(d) for d in data]
    model_name = given.pop("model", None) or doc.get("model", "hierarchical")
    models.lookup(model_name)  # an unknown model name fails here, before any work
    condition = given.pop("condition", None) or doc.get("condition")
    if condition is not None:
        TOP_FIELDS["condition"].check("condition", condition)
    ascii = bool(given.pop("ascii", None) or doc.get("ascii", False))
    device = given.get("device", doc.get("train", {}).get("device", "auto"))
    gpu = "cuda" in doc and on_gpu(device)
    options, train = {}, {}
    for prefix, table in [("", doc)] + ([("cuda.", doc["cuda"])] if gpu else []):
        for key, value in table.get("options", {}).items():
            options[key] = check_file_option(path, f"{prefix}options", model_name, key, value)
        for key, value in table.get("train", {}).items():
            train[key] = check_train_value(path, f"{prefix}train", key, value)
    spec = RunSpec(data, model_name, options, TrainConfig(**train), condition, ascii, gpu).override(given)
    if ("distill" in train or "distill" in given) and not spec.train.teacher:
        raise ConfigError("teacher", "needed where distill is set: the trained run to learn from (on the same data)")
    if spec.train.teacher:  # absolute, so that --resume finds it from any folder
        spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, teacher=os.path.abspath(spec.train.teacher)))
    return spec
