"""The command line: makemore train | eval | sample."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from makemore.errors import UserError

if TYPE_CHECKING:
    from makemore.train import TrainConfig


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        # one line, no usage block
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def bounded(convert, low, *, low_inclusive=False, high=None, what):
    """An argparse type: a finite number above (or from) low and below high; else a one-line message."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        ok = (value is not None and math.isfinite(value) and (value >= low if low_inclusive else value > low)
              and (high is None or value < high))
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


positive_int = bounded(int, 0, what="a positive integer")
non_negative_int = bounded(int, 0, low_inclusive=True, what="a non-negative integer")
positive_float = bounded(float, 0, what="a positive number")
non_negative_float = bounded(float, 0, low_inclusive=True, what="a non-negative number")
unit_interval = bounded(float, 0, low_inclusive=True, high=1, what="a number in [0, 1)")


def model_flags():
    from makemore.models.wavenet import NORMS

    return {  # flag -> (model config field, argparse type or choices, help); accepted by models whose config has the field
        "context": ("block_size", positive_int, "characters of context (block_size)"),
        "n_embd": ("n_embd", positive_int, "embedding size"),
        "n_hidden": ("n_hidden", positive_int, "hidden size"),
        "smoothing": ("smoothing", non_negative_float, "bigram: add-k smoothing"),
        "n_skip": ("n_skip", positive_int, "wavenet: skip channels"),
        "n_stacks": ("n_stacks", positive_int, "wavenet: stacks of dilations 1 .. 2**k"),
        "kernel_size": ("kernel_size", positive_int, "wavenet: convolution kernel"),
        "norm": ("norm", NORMS, "wavenet: normalisation in each layer"),
        "dropout": ("dropout", unit_interval, "wavenet, rnn, gru, lstm, transformer: dropout"),
        "n_layers": ("n_layers", positive_int, "rnn, gru, lstm, transformer: layers"),
        "n_head": ("n_head", positive_int, "transformer: attention heads"),
    }


def train_flags():
    from makemore.train import OPTIMIZERS, SCHEDULES

    return {  # TrainConfig field -> (argparse type or choices, help)
        "steps": (positive_int, "optimisation steps"),
        "batch_size": (positive_int, "examples per step: windows, or whole words for sequence models"),
        "optimizer": (OPTIMIZERS, "optimizer"),
        "lr": (positive_float, "learning rate"),
        "schedule": (SCHEDULES, "step: x decay_factor for the last quarter; cosine; constant"),
        "weight_decay": (non_negative_float, "weight decay"),
        "seed": (non_negative_int, "seed of the initial weights and the batches"),
        "device": (("auto", "cpu", "cuda"), "where to train"),
        "eval_every": (positive_int, "steps between whole-split evaluations"),
        "backend": (("torch", "jax"), "jax: the JAX/Flax port (hierarchical, conv; pip install makemore[jax])"),
    }


def build_parser() -> ArgumentParser:
    from makemore.data import DATASETS, SPLITS
    from makemore.models import MODELS
    from makemore.train import TrainConfig

    defaults = TrainConfig()
    parser = ArgumentParser(prog="makemore", description="Train character-level models on a list of words; generate more like them.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    p = sub.add_parser("train", help="train a model; writes a run folder")
    p.add_argument("data", nargs="*", help=f"a registered data set ({', '.join(DATASETS)}) or a UTF-8 text file "
                   "with one item per line; several are joined")
    p.add_argument("--ascii", action="store_true", default=None, help="strip accents and tildes (é -> e, ñ -> n); "
                   "drop characters with no ASCII letter under them")
    p.add_argument("--resume", type=Path, metavar="RUN", help="go on from the last checkpoint of a run folder")
    p.add_argument("--condition", choices=("file",), help="file: each data file is a class to generate in (wavenet)")
    p.add_argument("--model", help=f"one of: {', '.join(MODELS)} (default: hierarchical)")
    for flag, (key, kind, what) in model_flags().items():
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, **({"choices": kind} if isinstance(kind, tuple) else {"type": kind}),
                       help=what)
    p.add_argument("--config", type=Path, help="a TOML file describing the run; flags override it")
    p.add_argument("--preset", help=f"a shipped config: {', '.join(presets())} (flags override it)")
    for key, (kind, what) in train_flags().items():  # default None: a flag overrides the config file only if given
        p.add_argument(f"--{key.replace('_', '-')}", default=None, **({"choices": kind} if isinstance(kind, tuple) else {"type": kind}),
                       help=f"{what} (default: {getattr(defaults, key)})")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<data>, numbered if taken)")
    p.add_argument("--samples", type=non_negative_int, default=10, help="names to print at the end")
    p.add_argument("--tensorboard", action="store_true", help="also log scalars for TensorBoard (RUN/tensorboard)")
    p.add_argument("--track-stats", action="store_true", help="record the update:data ratio of each weight for "
                   "makemore diagnose (RUN/update_ratio.jsonl)")

    p = sub.add_parser("eval", help="loss of a trained run on whole splits")
    p.add_argument("run", type=Path)
    p.add_argument("--split", nargs="+", choices=SPLITS, default=["train", "val"])
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    p = sub.add_parser("sample", help="generate names from a trained run")
    p.add_argument("run", type=Path)
    p.add_argument("-n", "--num", type=positive_int, default=20, help="how many names")
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--top-k", type=positive_int, help="sample among the k likeliest characters (clamped to the vocabulary)")
    p.add_argument("--prefix", default="", help="every name starts with this")
    p.add_argument("--seed", type=non_negative_int, default=None, help="for repeatable output")
    p.add_argument("--novel-only", action="store_true", help="leave out names that are in the training data")
    p.add_argument("--class", dest="cls", help="for a conditioned model: the class (data file name) to generate in")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    p = sub.add_parser("sweep", help="a hyperparameter search with Optuna; resumes when run again")
    p.add_argument("--config", type=Path, required=True, help="the base run, a TOML file as for train --config")
    p.add_argument("--space", type=Path, required=True, help="a TOML file: [train] / [options] entries such as "
                   "lr = { low = 1e-3, high = 1e-1, log = true } or n_embd = { choices = [16, 32] }")
    p.add_argument("--trials", type=positive_int, default=20, help="finished trials (complete or pruned) to reach")
    p.add_argument("--workers", type=positive_int, default=1, help="processes on this machine")
    p.add_argument("--out", type=Path, help="the sweep folder (default: sweeps/<config name>)")
    p.add_argument("--storage", help="an Optuna storage URL, such as postgresql://user@host/db, shared by several "
                   "machines (default: SQLite in the sweep folder)")
    p.add_argument("--study", help="the study's name in the storage (default: the sweep folder's name)")

    p = sub.add_parser("diagnose", help="activation, gradient and update:data figures of a run (hooks)")
    p.add_argument("run", type=Path)
    p.add_argument("--batches", type=positive_int, default=4, help="training batches to run forward and backward")
    p.add_argument("--batch-size", type=positive_int, help="examples per batch (default: the run's)")
    p.add_argument("--init", action="store_true", help="diagnose the run's model as initialised, before training")
    p.add_argument("--out", type=Path, help="where the PNGs go (default: RUN/diagnose)")

    p = sub.add_parser("serve", help="a web page and an HTTP API that generate names from a run")
    p.add_argument("run", type=Path)
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: this machine only)")
    p.add_argument("--port", type=bounded(int, 1, low_inclusive=True, high=65536, what="a port from 1 to 65535"),
                   default=8000)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    p = sub.add_parser("runs", help="a table of the runs in a folder, best val loss first")
    p.add_argument("folder", type=Path, nargs="?", default=Path("runs"))

    p = sub.add_parser("plot", help="train and val curves of several runs in one PNG")
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--out", type=Path, default=Path("runs.png"))
    return parser


# ----------------------------------------------------------------------------- train

TOP_KEYS = {"data": "a string or a list of strings", "model": "a string", "condition": "a string", "ascii": "true or false"}
TABLES = ("options", "train")


def presets() -> list[str]:
    from importlib.resources import files

    return sorted(p.name.removesuffix(".toml") for p in files("makemore").joinpath("presets").iterdir()
                  if p.name.endswith(".toml"))


def preset_path(name: str) -> Path:
    from importlib.resources import files

    if name not in presets():
        raise UserError(f"--preset: unknown preset {name!r}; presets: {', '.join(presets())}")
    return Path(str(files("makemore").joinpath("presets", f"{name}.toml")))


def read_config(path: Path) -> dict:
    """A run's TOML description: data, model, condition; [options] for the model; [train] for training; and
    [cuda.options] / [cuda.train], which override those two when the run trains on a GPU. Unknown keys and
    wrong types are one-line errors naming the file and the key."""
    doc = read_toml(path, "--config")
    for key, value in doc.items():
        if key in (*TABLES, "cuda"):
            if not isinstance(value, dict):
                raise UserError(f"{path}: [{key}] must be a table")
            continue
        if key not in TOP_KEYS:
            raise UserError(f"{path}: unknown key {key!r}; valid keys: {', '.join([*TOP_KEYS, '[options]', '[train]', '[cuda]'])}")
        ok = isinstance(value, bool) if key == "ascii" else isinstance(value, str) or (
            key == "data" and isinstance(value, list) and all(isinstance(v, str) for v in value))
        if not ok:
            raise UserError(f"{path}: {key} must be {TOP_KEYS[key]}")
    for key, value in doc.get("cuda", {}).items():
        if key not in TABLES or not isinstance(value, dict):
            raise UserError(f"{path}: [cuda] holds only the tables [cuda.options] and [cuda.train], not {key!r}")
    for where, table in (("[train]", doc.get("train", {})), ("[cuda.train]", doc.get("cuda", {}).get("train", {}))):
        for key, value in table.items():
            check_train_value(path, f"{where} {key}", key, value)
    return doc


def read_toml(path: Path, flag: str) -> dict:
    import tomllib

    if not path.is_file():
        raise UserError(f"{flag} {path}: no such file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"{path}: not valid TOML ({str(e).splitlines()[0]})") from None


def check_train_value(path, where: str, key: str, value):
    """A training setting as a file gives it: a known key, the right type, a value its flag would accept."""
    flags = train_flags()
    if key not in flags:
        raise UserError(f"{path}: unknown key {key!r} in [train]; valid keys: {', '.join(flags)}")
    kind = flags[key][0]
    if isinstance(kind, tuple):
        if value not in kind:
            raise UserError(f"{path}: {where}: expected one of {', '.join(kind)}, got {value!r}")
        return
    expected = "float" if kind in (positive_float, non_negative_float) else "int"
    check_type(path, where, value, expected)
    try:
        kind(str(value))
    except argparse.ArgumentTypeError as e:
        raise UserError(f"{path}: {where}: {e}") from None


def check_type(path, where: str, value, expected: str):
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
    }.get(expected, True)
    if not ok:
        raise UserError(f"{path}: {where}: expected {expected}, got {type(value).__name__} {value!r}")


def check_option(path, where: str, model_name: str, key: str, value):
    """A model option as a file gives it: a field of the model's config (not vocab_size), of the field's type."""
    from makemore import models

    fields = {f.name: f.type for f in dataclasses.fields(models.lookup(model_name)[0])}
    if key not in fields or key == "vocab_size":
        valid = [f for f in fields if f != "vocab_size"]
        table = where.split()[0]  # [options], or [cuda.options]
        raise UserError(f"{path}: unknown key {key!r} in {table} for model {model_name!r}; valid keys: {', '.join(valid)}")
    check_type(path, where, value, fields[key])


@dataclass
class RunSpec:
    """What a run is, resolved from a config file and the flags given: the data, the model and its options, the
    training settings."""

    data: list
    model_name: str
    options: dict
    train: TrainConfig
    condition: str | None
    ascii: bool = False


def resolve_run(config: dict, path, args=None) -> RunSpec:
    """A config file's run, with the flags in args (argparse's, None where not given) overriding it."""
    from makemore import models
    from makemore.train import TrainConfig, resolve_device

    data = (args.data if args is not None else None) or config.get("data", [])
    data = [data] if isinstance(data, str) else data
    model_name = (args.model if args is not None else None) or config.get("model", "hierarchical")
    models.lookup(model_name)  # unknown model names fail here, before any work
    given = {k: v for k in train_flags() if (v := getattr(args, k, None)) is not None}
    tables = [("", config)]  # [options] and [train], then [cuda.*] on a GPU, then the flags
    if "cuda" in config and resolve_device(given.get("device", config.get("train", {}).get("device", "auto"))).type == "cuda":
        tables.append(("cuda.", config["cuda"]))
    options, train = {}, {}
    for prefix, table in tables:
        for key, value in table.get("options", {}).items():
            check_option(path, f"[{prefix}options] {key}", model_name, key, value)
            options[key] = value
        train.update(table.get("train", {}))
    train.update(given)
    fields = models.config_fields(model_name)
    for flag, (key, _, _) in model_flags().items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if key not in fields:
            raise UserError(f"--{flag.replace('_', '-')}: model {model_name!r} has no such option")
        options[key] = value
    train = TrainConfig(**train)
    condition = getattr(args, "condition", None) or config.get("condition")
    ascii = getattr(args, "ascii", None) or config.get("ascii", False)
    return RunSpec(data, model_name, options, train, condition, ascii)


def default_run_folder(data) -> Path:
    stem = "+".join(Path(d).stem for d in data) or "run"
    folder, k = Path("runs") / stem, 1
    while folder.exists():
        k += 1
        folder = Path("runs") / f"{stem}-{k}"
    return folder


def cmd_train(args) -> int:
    from makemore import models
    from makemore.data import Corpus
    from makemore.train import CHECKPOINT, leave_ranks, load_run, make_trainer, resume_trainer

    if args.resume:
        if args.data or args.config or args.preset:
            raise UserError("--resume: the run folder holds its data and config; give neither data nor --config/--preset")
        run = load_run(args.resume)
        trainer, corpus, model_name, out = resume_trainer(run), run.corpus, run.model_name, run.folder
        say = print if trainer.ranks.lead else silent
        say(f"resuming {out} at step {trainer.step:,} of {trainer.cfg.steps:,}")
    else:
        if args.config and args.preset:
            raise UserError("--config and --preset: give one of them")
        config_path = preset_path(args.preset) if args.preset else args.config
        spec = resolve_run(read_config(config_path) if config_path else {}, config_path, args)
        if not spec.data:
            raise UserError("the following arguments are required: data (or --config with data, or --resume RUN)")
        model_name = spec.model_name
        out = args.out or default_run_folder(spec.data)
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out}: exists and is not a folder")
        if (out / CHECKPOINT).exists():
            raise UserError(f"--out {out}: already holds a run; choose another folder or --resume it "
                            "(nothing was overwritten)")
        corpus = Corpus.load_many(spec.data, condition=spec.condition, ascii=spec.ascii)
        trainer = make_trainer(corpus, model_name, spec.options, spec.train)
        say = print if trainer.ranks.lead else silent
        say(f"{corpus.source}: {len(corpus.items):,} items, vocabulary of {corpus.vocab.size}; "
            f"{len(trainer.train_data[0]):,} train / {len(trainer.val_data[0]):,} val examples")
        ranks = f" x {trainer.ranks.world} processes" if trainer.ranks.world > 1 else ""
        say(f"model {model_name}: {models.num_params(trainer.model):,} parameters; {trainer.cfg.steps:,} steps on "
            f"{trainer.device}{ranks}; run folder {out}")
    try:
        if not trainer.ranks.lead:  # torchrun's other ranks train in silence; rank 0 prints and keeps the run folder
            trainer.run()
            return 0
        return train_and_report(trainer, args, out, corpus, model_name)
    finally:
        leave_ranks()


def silent(*args, **kwargs):
    pass


def train_and_report(trainer, args, out: Path, corpus, model_name: str) -> int:
    from makemore.sample import default_max_len
    from makemore.train import RunWriter, TensorBoard, UpdateRatios, progress_bar

    writer = RunWriter(out, corpus.source, model_name, corpus)
    tensorboard = TensorBoard(out) if args.tensorboard else None  # before any file: fails if it is not installed
    writer.start(trainer)
    trainer.add_callback(writer)
    if tensorboard:
        trainer.add_callback(tensorboard)
    if args.track_stats:
        trainer.add_callback(UpdateRatios(out, trainer))
    with progress_bar(trainer) as bar:
        trainer.add_callback(bar)
        try:
            result = trainer.run()
        except KeyboardInterrupt:
            bar.close()
            saved = writer.saved_step
            where = f"the checkpoint in {out} is from step {saved}" if saved is not None else "no checkpoint was written"
            print(f"interrupted at step {trainer.step}; {where}; makemore train --resume {out} goes on", file=sys.stderr)
            return 130
        finally:
            if tensorboard:
                tensorboard.close()
    print(f"train {result['train_loss']:.4f}")
    print(f"val {result['val_loss']:.4f}")
    for cls in range(len(corpus.classes)) if corpus.classes else [None]:
        if not args.samples:
            break
        if cls is not None:
            print(f"class {corpus.classes[cls]}:")
        print_samples(trainer.model, corpus.vocab, corpus.items_of(cls), args.samples, seed=trainer.cfg.seed, cls=cls,
                      max_len=default_max_len(corpus.items))
    print(f"saved {out}/ (model.pt, config.json, metrics.jsonl, loss.png)")
    return 0


# ----------------------------------------------------------------------------- eval and sample


def cmd_eval(args) -> int:
    from makemore.models import device_of
    from makemore.train import evaluate, load_run

    run = load_run(args.run, device=args.device)
    device = device_of(run.model)
    for split in args.split:
        data = tuple(t.to(device) for t in run.examples(split))
        print(f"{split} {evaluate(run.model, data):.4f}")
    return 0


def print_samples(model, vocab, known, n, *, seed=None, max_len, novel_only=False, **options):
    import torch

    from makemore.models import device_of
    from makemore.sample import draw, novelty

    device = device_of(model)
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    shown, drawn = draw(model, vocab, n, known, novel_only=novel_only, max_len=max_len, generator=generator, **options)
    for name in shown:
        print(f"{name} *" if name in known else name)
    rate = novelty(drawn, known)
    print(f"novelty {100 * rate:.1f}% ({sum(s not in known for s in drawn)} of {len(drawn)} samples are not in the "
          f"training data{'; * marks those that are' if not novel_only else ''})")


def cmd_sample(args) -> int:
    from makemore.sample import default_max_len
    from makemore.train import load_run

    run = load_run(args.run, device=args.device)
    corpus = run.corpus
    cls = None
    if args.cls is not None or corpus.classes:
        if not corpus.classes:
            raise UserError(f"--class: the model in {args.run} is not conditioned on classes")
        if args.cls not in corpus.classes:
            given = "none given" if args.cls is None else f"unknown class {args.cls!r}"
            raise UserError(f"--class: {given}; valid classes: {', '.join(corpus.classes)}")
        cls = corpus.classes.index(args.cls)
    print_samples(run.model, corpus.vocab, corpus.items_of(cls), args.num, seed=args.seed, novel_only=args.novel_only,
                  max_len=default_max_len(corpus.items, args.prefix), cls=cls,
                  temperature=args.temperature, top_k=args.top_k, prefix=args.prefix)
    return 0


def read_run_files(folder: Path):
    """(config, summary, metrics) of a run folder, or a one-line error."""
    try:
        config = json.loads((folder / "config.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
        metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    except FileNotFoundError as e:
        raise UserError(f"{folder}: not a run folder (no {Path(e.filename).name})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{folder}: a damaged run file ({e.msg})") from None
    return config, summary, metrics


def cmd_runs(args) -> int:
    if not args.folder.is_dir():
        raise UserError(f"{args.folder}: no such folder")
    rows = []
    for folder in sorted(p for p in args.folder.iterdir() if (p / "summary.json").exists()):
        config, summary, _ = read_run_files(folder)
        rows.append((summary.get("val_loss", float("inf")), folder.name, summary, config))
    if not rows:
        print(f"{args.folder}: no runs")
        return 0
    width = max(len(r[1]) for r in rows)
    print(f"{'run':{width}}  {'model':12} {'params':>8} {'steps':>8} {'train':>7} {'val':>7} {'time':>8} {'tokens/s':>9}")
    for val, name, s, config in sorted(rows, key=lambda r: r[0]):
        tokens = f"{s['tokens_per_s']:,.0f}" if s.get("tokens_per_s") else "-"
        print(f"{name:{width}}  {config['model']:12} {s['params']:>8,} {s['step']:>8,} {s['train_loss']:>7.4f} "
              f"{val:>7.4f} {s['time_s']:>7.1f}s {tokens:>9}")
    return 0


def cmd_plot(args) -> int:
    from makemore.plots import compare_runs

    runs = {}
    for folder in args.runs:
        if not folder.is_dir():
            raise UserError(f"{folder}: no such run folder")
        runs[folder.name if folder.name not in runs else str(folder)] = read_run_files(folder)[2]
    compare_runs(runs, args.out)
    print(f"wrote {args.out}")
    return 0


def cmd_sweep(args) -> int:
    from makemore.sweep import Sweep, default_threads, run_sweep, storage_url, table

    folder = args.out or Path("sweeps") / args.config.stem
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder}: exists and is not a folder")
    sweep = Sweep(args.config, args.space, folder, storage_url(folder, args.storage), args.study or folder.name,
                  args.trials, default_threads(args.workers))
    best = run_sweep(sweep, args.workers)
    print(table(folder))
    if best:
        print(f"best: trial {best['number']}, val {best['val_loss']:.4f}; makemore train --config {folder / 'best.toml'}")
    print(f"wrote {folder}/ (best.toml, trials.csv, history.png, trials/)")
    return 0


def cmd_diagnose(args) -> int:
    import torch

    from makemore import models
    from makemore.diagnose import collect, read_update_ratios, summarize
    from makemore.plots import activation_histograms, gradient_histograms, update_ratio_plot
    from makemore.train import crop_to_longest, load_run

    run = load_run(args.run)
    model, seed = run.model, run.train_config.seed
    if args.init:  # the same model as its run first built it
        model = models.build(run.model_name, models.make_config(run.model_name, **run.state["model_config"]),
                             generator=torch.Generator().manual_seed(seed))
    data = run.examples("train")
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(args.batches):
        ix = torch.randint(0, len(data[0]), (args.batch_size or run.train_config.batch_size,), generator=generator)
        batch = [t[ix] for t in data]
        if batch[1].ndim == 2:  # whole words: up to the batch's longest, as training sees them
            crop_to_longest(batch)
        batches.append(batch)
    layers, weight_stats = collect(model, batches)
    stats = summarize(layers, weight_stats)
    out = args.out or args.run / "diagnose"
    out.mkdir(parents=True, exist_ok=True)
    when = "at init" if args.init else "trained"
    title = f"({run.model_name}, {when})"
    activation_histograms(layers, stats["layers"], out / "activations.png", title)
    gradient_histograms(layers, stats["layers"], weight_stats, stats["weights"], out / "gradients.png", title)
    print(f"{'layer':28} {'kind':10} {'mean':>7} {'std':>6} {'saturated':>9} {'grad std':>9}")
    for r in stats["layers"]:
        sat = f"{100 * r['saturated']:.1f}%" if r["saturated"] is not None else "-"
        grad = f"{r['grad_std']:.2e}" if r["grad_std"] is not None else "-"
        print(f"{r['layer']:28} {r['kind']:10} {r['mean']:>+7.3f} {r['std']:>6.3f} {sat:>9} {grad:>9}")
    for r in stats["weights"]:
        print(f"weight {r['weight']:30} grad:data {r['grad_to_data']:.2e}")
    written = ["activations.png", "gradients.png"]
    records = read_update_ratios(args.run)
    if records:
        update_ratio_plot(records, out / "update_ratio.png", f"({run.model_name})")
        written.append("update_ratio.png")
    else:
        print(f"no update:data ratios in {args.run}: train with --track-stats to record them")
    print(f"wrote {out}/ ({', '.join(written)})")
    return 0


def cmd_serve(args) -> int:
    import socket

    try:
        from makemore.serve import serve
    except ImportError as e:
        raise UserError(f"serve: {e.name} is not installed; pip install fastapi uvicorn") from None
    with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as s:  # a clear message, not uvicorn's
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((args.host, args.port))
        except OSError as e:
            raise UserError(f"--host {args.host} --port {args.port}: cannot listen there ({e.strerror})") from None
    serve(args.run, args.host, args.port, device=args.device)
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "sample": cmd_sample, "runs": cmd_runs, "plot": cmd_plot,
            "sweep": cmd_sweep, "diagnose": cmd_diagnose,
            "serve": cmd_serve}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"makemore {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
