"""The command line's flags: each command's parser, the flags of settings made from the library's field tables
(config.TRAIN_FIELDS, models.OPTIONS, sample.SAMPLING), and the speller that names a field as the flag that sets
it (n_embd: --n-embd, block_size: --context)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from makemore import models
from makemore.config import TOP_FIELDS, TRAIN_FIELDS, TrainConfig, presets
from makemore.data import SPLITS
from makemore.fields import Field
from makemore.lists import DATASETS
from makemore.sample import SAMPLING


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        # one line, no usage block
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def flag_type(field: Field):
    """An argparse type from a field: its value, or argparse's one-line message with what was expected."""

    def parse(text):
        try:
            return field.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def add_field(parser, name: str, field: Field, help_default=None):
    """--name (or the field's own flag), into args.<name>; None where not given, so that it overrides only then."""
    kind = {"choices": field.choices} if field.choices else {"type": flag_type(field)}
    if field.type is bool:
        kind = {"action": "store_true", "default": None}
    default = f" (default: {help_default})" if help_default is not None else ""
    flag = field.flag or name
    if "type" in kind:
        kind["metavar"] = flag.upper()
    parser.add_argument(f"--{flag.replace('_', '-')}", dest=name, help=field.help + default, **kind)


def number(kind, low, what, **bounds):
    """An argparse type for a command's own numeric flags (not settings of a run)."""
    return flag_type(Field(kind, what, low=low, **bounds))


def build_parser() -> ArgumentParser:
    defaults = TrainConfig()
    parser = ArgumentParser(prog="makemore", description="Train character-level models on a list of words; "
                                                         "generate more like them.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    p = sub.add_parser("train", help="train a model; writes a run folder")
    p.add_argument("data", nargs="*", help=f"a registered data set ({', '.join(DATASETS)}) or a UTF-8 text file "
                   "with one item per line; several are joined")
    add_field(p, "ascii", Field(bool, "strip accents and tildes (é -> e, ñ -> n); drop characters with no ASCII "
                                      "letter under them"))
    p.add_argument("--resume", type=Path, metavar="RUN", help="go on from the last checkpoint of a run folder")
    add_field(p, "condition", TOP_FIELDS["condition"])
    p.add_argument("--model", help=f"one of: {', '.join(models.MODELS)} (default: hierarchical)")
    for name, field in models.OPTIONS.items():
        add_field(p, name, field)
    p.add_argument("--config", type=Path, help="a TOML file describing the run; flags override it")
    p.add_argument("--preset", help=f"a shipped config: {', '.join(presets())} (flags override it)")
    for name, field in TRAIN_FIELDS.items():
        add_field(p, name, field, getattr(defaults, name))
    p.add_argument("--out", type=Path, help="run folder (default: runs/<data>, numbered if taken)")
    p.add_argument("--samples", type=number(int, 0, "names to print", low_inclusive=True), default=10,
                   help="names to print at the end")
    p.add_argument("--tensorboard", action="store_true", help="also log scalars for TensorBoard (RUN/tensorboard)")
    p.add_argument("--track-stats", action="store_true", help="record the update:data ratio of each weight for "
                   "makemore diagnose (RUN/update_ratio.jsonl)")

    p = sub.add_parser("eval", help="loss of a trained run on whole splits")
    p.add_argument("run", type=Path)
    p.add_argument("--split", nargs="+", choices=SPLITS, default=["train", "val"])
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    p = sub.add_parser("sample", help="generate names from a trained run")
    p.add_argument("run", type=Path)
    p.add_argument("-n", "--num", dest="n", type=flag_type(SAMPLING["n"]), default=20, help=SAMPLING["n"].help)
    for name in ("temperature", "top_k", "top_p", "prefix", "min_len", "max_len", "seed", "pattern", "ends_with",
                 "min_distance"):
        add_field(p, name, SAMPLING[name])
    p.add_argument("--contains", action="append", metavar="TEXT", help=SAMPLING["contains"].help)
    p.add_argument("--novel-only", action="store_true", help="leave out names that are in the training data")
    p.add_argument("--exclude", type=Path, metavar="FILE", help="a file of names never to give, one per line")
    p.add_argument("--unique", action="store_true", help="each name once")
    p.add_argument("--no-list-style", dest="list_style", action="store_false",
                   help="also names that write what no item of the list does (a capital after a lower-case letter, a "
                        "bracket left open, a punctuation mark more often than any item has it): by default these "
                        "are drawn again")
    add_field(p, "seconds", SAMPLING["seconds"], 5)
    p.add_argument("--class", dest="cls", help="for a conditioned model: the class (data file name) to generate in")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    p = sub.add_parser("score", help="how likely words are under a run's model")
    p.add_argument("run", type=Path)
    p.add_argument("words", nargs="*", help="the words to score")
    p.add_argument("--file", type=Path, help="a file of words to score, one per line")
    p.add_argument("--class", dest="cls", help="for a conditioned model: the class to score them in")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    p = sub.add_parser("sweep", help="a hyperparameter search with Optuna; resumes when run again")
    p.add_argument("--config", type=Path, required=True, help="the base run, a TOML file as for train --config")
    p.add_argument("--space", type=Path, required=True, help="a TOML file: [train] / [options] entries such as "
                   "lr = { low = 1e-3, high = 1e-1, log = true } or n_embd = { choices = [16, 32] }")
    p.add_argument("--trials", type=number(int, 0, "finished trials"), default=20,
                   help="finished trials (complete or pruned) to reach")
    p.add_argument("--workers", type=number(int, 0, "processes"), default=1, help="processes on this machine")
    p.add_argument("--out", type=Path, help="the sweep folder (default: sweeps/<config name>)")
    p.add_argument("--storage", help="an Optuna storage URL, such as postgresql://user@host/db, shared by several "
                   "machines (default: SQLite in the sweep folder)")
    p.add_argument("--grace", type=number(float, 2, "seconds", low_inclusive=True), default=20,
                   help="seconds a trial's heartbeat may be silent before the trial is taken for killed and run "
                        "again (default: 20; its heartbeat beats four times in it)")
    p.add_argument("--study", help="the study's name in the storage (default: the sweep folder's name)")

    p = sub.add_parser("diagnose", help="activation, gradient and update:data figures of a run (hooks)")
    p.add_argument("run", type=Path)
    p.add_argument("--batches", type=number(int, 0, "batches"), default=4,
                   help="training batches to run forward and backward")
    p.add_argument("--batch-size", type=number(int, 0, "examples"), help="examples per batch (default: the run's)")
    p.add_argument("--init", action="store_true", help="diagnose the run's model as initialised, before training")
    p.add_argument("--out", type=Path, help="where the PNGs go (default: RUN/diagnose)")

    p = sub.add_parser("serve", help="a web page and an HTTP API that generate names from a run; with no run (or a "
                                     "folder of runs), a workspace page that trains lists too")
    p.add_argument("run", type=Path, nargs="?", help="a run folder; or a folder of runs (default: runs/), served as "
                                                     "a workspace")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: this machine only)")
    p.add_argument("--port", type=number(int, 1, "a port", low_inclusive=True, high=65536), default=8000)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    p.add_argument("--workers", type=number(int, 0, "processes"), default=1,
                   help="server processes, each with the model and its own batches: on a CPU, up to one a core "
                        "(the cores are shared out as torch threads); default 1")

    p = sub.add_parser("ensemble", help="several trained runs as one: the mixture of their next-character "
                       "distributions")
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--weights", type=flag_type(Field(float, "a member's weight", low=0, low_inclusive=True)),
                   nargs="+", metavar="W", help="one weight per run, summing to 1 (default: chosen on val)")
    p.add_argument("--out", type=Path, help="the run folder (default: runs/ensemble, numbered if taken)")

    p = sub.add_parser("export", help="a trained run outside Python: its step model as ONNX, its vocabulary and "
                       "n-gram as JSON (--out); or a page that generates in the browser with no server (--web)")
    p.add_argument("run", type=Path)
    p.add_argument("--format", choices=("onnx",), default="onnx", help="the format of --out")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="the export folder, which must not exist")
    where.add_argument("--web", type=Path, metavar="DIR", help="a static page's folder, which must not exist: open "
                                                                "its index.html from any static host or the disk")

    p = sub.add_parser("runs", help="a table of the runs in a folder, best val loss first: the losses of each run's "
                       "kept (best) model, its step, and the last val loss")
    p.add_argument("folder", type=Path, nargs="?", default=Path("runs"))

    p = sub.add_parser("plot", help="train and val curves of several runs in one PNG")
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--out", type=Path, default=Path("runs.png"))
    return parser


def speller(parser: ArgumentParser, command: str):
    """field name -> the flag of `command` that sets it (block_size: --context, cls: --class); other names as
    they are."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    flags = {a.dest: a.option_strings[-1] for a in sub._actions if a.option_strings}
    return lambda name: flags.get(name, name)
