"""Runs: the run folder and its checkpoint, a trained run loaded for use (Run), and a run being trained or
resumed (Training), with the choice of backend."""

from __future__ import annotations

import dataclasses
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from makemore import models
from makemore.callbacks import ProgressBar
from makemore.config import RunSpec, TrainConfig, resolve_device
from makemore.data import IGNORE, Corpus, read_items
from makemore.errors import ConfigError, UserError
from makemore.files import truncate_jsonl, write_atomic
from makemore.models.base import position_logits
from makemore.sample import SAMPLING, SECONDS, Drawn, Options, Sampler, Score, default_max_len, draw, next_char_probs, score
from makemore.train import Trainer, evaluate, examples, sequences, world_size

CHECKPOINT_FORMAT = 1
CHECKPOINT = "model.pt"
RECIPE = "recipe.json"  # an ensemble recipe's members, until they are mixed


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: dict):
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(path, buf.getvalue())


def checkpoint_state(model_name, model, corpus: Corpus, train_cfg, optimizer=None, step=0, generator=None,
                     elapsed=0.0, rank_rng_states=None, best=None, best_state=None, bad_evals=0, averaged=None,
                     stopped=None) -> dict:
    """Everything a run folder needs: to sample and evaluate (the best weights, config, corpus), and to resume
    exactly (the last weights, optimizer state, step, the batch generator's and torch's random states, training
    time so far, the best evaluation and the evaluations since, the moving average of the weights)."""
    if best is not None:  # the best evaluation's weights; None where they are the last ones (no second copy)
        last = best["step"] == step and best.get("weights") != "average"
        best = dict(best, bad_evals=bad_evals, model=None if last else best_state)
    return {
        "format": CHECKPOINT_FORMAT,
        "model_name": model_name,
        "model_config": dataclasses.asdict(model.config),
        "corpus": corpus.state(),
        "train_config": dataclasses.asdict(train_cfg),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "generator": generator.get_state() if generator is not None else None,
        "torch_rng": torch.get_rng_state(),
        "rank_rng_states": rank_rng_states,  # under torchrun: every rank's, at this step
        "elapsed": elapsed,
        "best": best,
        "averaged": averaged,
        "stopped": stopped,  # why it ended before its steps: patience, time_limit or callback
    }


def trainer_state(model_name, trainer, corpus: Corpus) -> dict:
    return checkpoint_state(model_name, trainer.model, corpus, trainer.cfg, trainer.optimizer, trainer.step,
                            trainer.generator, trainer.elapsed, trainer.rank_rng_states, trainer.best,
                            trainer.best_state, trainer.bad_evals, trainer.averaged, trainer.stopped)


@dataclass
class Run:
    """A trained model as its run folder holds it: enough to generate, evaluate and serve with nothing else.

        run = makemore.load("runs/names")
        run.generate(20, temperature=0.8, prefix="ma")
        run.evaluate("val")
    """

    folder: Path
    model_name: str
    model: torch.nn.Module
    corpus: Corpus
    train_config: TrainConfig
    state: dict = field(repr=False)

    @property
    def vocab(self):
        return self.corpus.vocab

    @property
    def classes(self) -> list[str]:
        """The classes a conditioned model generates in (the data files' names); [] for others."""
        return self.corpus.classes or []

    def known(self, cls: str | None = None) -> frozenset[str]:
        """The training items (of one class): what a generated name is compared with for novelty."""
        return self.corpus.items_of(self.corpus.class_index(cls))

    def examples(self, split: str):
        return examples(self.model, self.corpus, split)

    def evaluate(self, split: str = "val") -> float:
        """The mean loss per character (end tokens included) over a whole split: train, val or test."""
        if split not in ("train", "val", "test"):
            raise ConfigError("split", f"expected one of train, val, test, got {split!r}")
        data = tuple(t.to(models.device_of(self.model)) for t in self.examples(split))
        return evaluate(self.model, data)

    def sampler(self, n: int = 10, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                prefix: str = "", seed: int | None = None, cls: str | None = None, min_len: int = 0,
                max_len: int | None = None, novel_only: bool = False, exclude=(), unique: bool = False,
                seconds: float = SECONDS, logprobs: bool = False) -> Sampler:
        """A request for n names, checked, ready to be drawn alone (draw) or batched with others (the server)."""
        SAMPLING["n"].check("n", n)
        SAMPLING["seconds"].check("seconds", seconds)
        index = self.corpus.class_index(cls)
        options = Options(temperature, top_k, top_p, prefix, index, min_len,
                          default_max_len(self.corpus.longest, prefix) if max_len is None else max_len).check(self.vocab)
        generator = torch.Generator(device=models.device_of(self.model))
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(SAMPLING["seed"].check("seed", seed))
        if isinstance(exclude, (str, Path)):  # a file of names, one per line
            exclude = read_items(exclude)
        return Sampler(n, options, generator, self.corpus.items_of(index), novel_only, frozenset(exclude), unique,
                       seconds=seconds, logprobs=logprobs)

    def draw(self, n: int = 10, **options) -> Drawn:
        """n names and every name drawn on the way, for the novelty rate: generate() with the details — whether
        all n were found (complete), and how many rounds it took."""
        return draw(self.model, self.vocab, self.sampler(n, **options))

    def generate(self, n: int = 10, **options) -> list[str]:
        """n names. Options: temperature; top_k (the k likeliest characters) and top_p (nucleus: the likeliest
        that make up this share of the probability); prefix (every name starts with it); seed (repeatable
        output); cls (a conditioned model's class); min_len, max_len (in characters, prefix included: a name that
        would be longer is drawn again, not cut; by default at most twice the longest item); novel_only (none of
        the training items); exclude (names never to give: a list, or a file with one per line); unique (each
        name once); seconds (how long to keep drawing again when filters leave out names, 5 by default: an impossible
        request gives what was found, fewer than n)."""
        return self.draw(n, **options).names

    def score(self, words, cls: str | None = None) -> list[Score]:
        """How likely each word is under the model: its log-probability (characters and end), the mean per
        character, and each character's surprisal."""
        return score(self.model, self.vocab, words, cls=self.corpus.class_index(cls))

    def next_char_probs(self, prefix: str = "", cls: str | None = None) -> list[float]:
        """The distribution of the character after prefix (index = token; 0 is the end of the name)."""
        return next_char_probs(self.model, self.vocab, prefix, cls=self.corpus.class_index(cls))


def load_run(folder, device: str = "cpu", weights: str = "best") -> Run:
    """A run folder's run, with the weights of its best evaluation (the lowest val loss), or with weights="last"
    those it stopped with, to go on from."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder")
    path = folder / CHECKPOINT
    if not path.is_file():
        raise UserError(f"{folder}: not a run folder (it has no {CHECKPOINT})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file: truncated, not a zip, foreign pickle
        raise UserError(f"{path}: corrupt checkpoint ({type(e).__name__}); train again") from None
    if not isinstance(state, dict) or "format" not in state:
        raise UserError(f"{path}: not a makemore checkpoint")
    if state["format"] != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path}: checkpoint format {state['format']} is not the one this makemore reads ({CHECKPOINT_FORMAT}); train again"
        )
    try:
        name = state["model_name"]
        config = models.make_config(name, **state["model_config"])
        model = models.build(name, config)
        best = state.get("best") or {}
        model.load_state_dict(best["model"] if weights == "best" and best.get("model") is not None else state["model"])
        train_cfg = TrainConfig(**state["train_config"])
        corpus = Corpus.from_state(state["corpus"])
    except (KeyError, TypeError, ValueError, RuntimeError, UserError) as e:
        raise UserError(f"{path}: checkpoint does not match this makemore "
                        f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
    model.to(resolve_device(device)).eval()
    return Run(folder, name, model, corpus, train_cfg, state)


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


# ----------------------------------------------------------------------------- the run folder, as it trains


class RunWriter:
    """A trainer callback that keeps the run folder: config.json at the start, a metrics.jsonl line per log and
    eval, at every eval the checkpoint and summary.json, and loss.png at the end and at most every PLOT_EVERY_S
    seconds before (with plot; else none), each written atomically."""

    PLOT_EVERY_S = 30.0

    def __init__(self, folder: Path, data: str, model_name: str, corpus: Corpus, plot: bool = True, note=None):
        self.folder, self.data, self.model_name, self.corpus = Path(folder), data, model_name, corpus
        self.note = note
        self.plot = plot
        self.metrics: list[dict] = []
        self.saved_step = None
        self.plotted = time.monotonic()

    def start(self, trainer):
        """A new run: config.json and an empty metrics.jsonl. A resumed run keeps the metrics up to its
        checkpoint and drops those written after it, which the resumed run writes again."""
        if trainer.step:
            self.metrics = truncate_jsonl(self.folder / "metrics.jsonl", trainer.step)
            self.saved_step = trainer.step
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {
            "data": self.data,
            "model": self.model_name,
            "model_config": dataclasses.asdict(trainer.model.config),
            "train": dataclasses.asdict(trainer.cfg),
            **({"auto": self.note} if self.note else {}),
        }
        write_atomic(self.folder / "config.json", json.dumps(config, indent=2) + "\n")
        (self.folder / "metrics.jsonl").write_text("")

    def __call__(self, trainer, event: str):
        if event in ("log", "eval"):
            record = trainer.last_log if event == "log" else trainer.last_eval
            self.metrics.append(record)
            with open(self.folder / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        if event == "eval":
            save_checkpoint(self.folder / CHECKPOINT, trainer_state(self.model_name, trainer, self.corpus))
            self.saved_step = trainer.step
            self.write_summary(trainer)
        if self.plot and (event == "end" or event == "eval" and time.monotonic() - self.plotted > self.PLOT_EVERY_S):
            from makemore.plots import loss_curve

            loss_curve(self.metrics, self.folder / "loss.png", title=f"{self.model_name} on {self.data}")
            self.plotted = time.monotonic()
        if event == "end":
            self.write_summary(trainer)  # with why it stopped

    def write_summary(self, trainer):
        """The run at a glance: the best evaluation's losses (those of the weights sample and eval read), and the
        last one's."""
        best, last = trainer.best or trainer.last_eval, trainer.last_eval
        tokens = trainer.step * trainer.cfg.batch_size * trainer.targets_per_row
        summary = {
            "model": self.model_name,
            "params": models.num_params(trainer.model),
            "step": trainer.step,
            "train_loss": best["train_loss"],
            "val_loss": best["val_loss"],
            "best_step": best["step"],
            "last_train_loss": last["train_loss"],
            "last_val_loss": last["val_loss"],
            "stopped": trainer.stopped,
            **({"best_weights": best.get("weights", "last")} if trainer.cfg.ema else {}),
            "time_s": round(trainer.elapsed, 3),
            "tokens_per_s": round(tokens / trainer.elapsed, 1) if trainer.elapsed > 0 else None,
        }
        write_atomic(self.folder / "summary.json", json.dumps(summary, indent=2) + "\n")


# ----------------------------------------------------------------------------- trainers: the backend's choice


def make_trainer(corpus: Corpus, model_name: str, model_options: dict, cfg: TrainConfig):
    """The model built as the lecture builds it (seeded generator first, then layers in order), on the lecture's
    split of the corpus, and the trainer of cfg.backend, ready to run."""
    options = dict(model_options)
    if corpus.classes:
        if "n_classes" not in models.config_fields(model_name):
            conditioned = [name for name in models.MODELS if "n_classes" in models.config_fields(name)]
            raise ConfigError("condition", f"model {model_name!r} takes no class; conditioned models: "
                                           f"{', '.join(conditioned)}")
        options["n_classes"] = len(corpus.classes)
    model_cfg = models.make_config(model_name, vocab_size=corpus.vocab.size, **options)
    if model_cfg.block_size == 0:  # "see the whole item": the longest item and its end token
        model_cfg.block_size = corpus.longest + 1
    if cfg.backend == "jax":
        from makemore.jax import MODELS as JAX_MODELS
        from makemore.jax import require

        if world_size() > 1:
            raise ConfigError("backend", "jax trains in one process; run it without torchrun")
        for name in ("ema", "teacher"):
            if getattr(cfg, name):
                raise ConfigError(name, "not in the jax backend")
        require()
        if model_name not in JAX_MODELS:
            raise ConfigError("backend", f"model {model_name!r} has no JAX port; JAX models: {', '.join(JAX_MODELS)}")
    torch.manual_seed(cfg.seed)  # for torch.nn layers' own init and for dropout
    generator = torch.Generator().manual_seed(cfg.seed)  # torch.manual_seed(42) before the model, as in the lecture
    model = models.build(model_name, model_cfg, generator=generator)
    data = examples(model, corpus, "train"), examples(model, corpus, "val")
    if cfg.backend == "jax":
        from makemore.jax.train import JaxTrainer

        return JaxTrainer(model_name, model, cfg, *data, generator)  # the same initial weights, then to JAX
    return Trainer.start(model, cfg, *data, generator, teacher=teacher_targets(cfg.teacher, corpus, model))


@torch.no_grad()
def teacher_targets(folder: str, corpus: Corpus, model) -> torch.Tensor | None:
    """The teacher run's next-character distribution at every training target of the model, laid out as the
    model's targets are: (N, T, V) for whole words (zeros at padding), (targets, V) for windows, which follow
    the words' positions in order. The teacher must have been trained on the same items, so that it saw the
    same training split and no val or test word."""
    if not folder:
        return None
    try:
        teacher = load_run(folder)
    except UserError as e:
        raise ConfigError("teacher", str(e)) from None
    if (teacher.corpus.items, teacher.corpus.classes) != (corpus.items, corpus.classes):
        raise ConfigError("teacher", f"{folder}: trained on other data ({teacher.corpus.source}, "
                                     f"{len(teacher.corpus.items):,} items); a teacher learns from the same items")
    X, Y, *cls = sequences(corpus, "train")  # (N, T): as a sequence model trains on them
    probs = torch.cat([F.softmax(position_logits(teacher.model, X[i : i + 1024], *(c[i : i + 1024] for c in cls))
                                 .float(), dim=-1) for i in range(0, len(X), 1024)])  # (N, T, V)
    probs[Y == IGNORE] = 0
    return probs[Y != IGNORE] if model.windowed else probs


def resume_trainer(run: Run) -> Trainer:
    """A Trainer that goes on from the run's checkpoint as if it had never stopped: the same weights, optimizer
    state, step, batch stream and random state."""
    state, model = run.state, run.model
    model.load_state_dict(state["model"])  # the last weights, whichever the run was loaded with
    if run.train_config.backend != "torch":
        raise UserError(f"{run.folder}: a run of the {run.train_config.backend} backend cannot be resumed "
                        "(its optimizer state is not saved); train again")
    done = finished(run)
    if done:
        raise UserError(f"{run.folder}: {done}; there is nothing to resume")
    generator = torch.Generator()
    generator.set_state(state["generator"])
    trainer = Trainer.start(model, run.train_config, examples(model, run.corpus, "train"),
                            examples(model, run.corpus, "val"), generator,
                            teacher=teacher_targets(run.train_config.teacher, run.corpus, model))
    trainer.optimizer.load_state_dict(state["optimizer"])
    ranks = trainer.ranks
    rank_states = state.get("rank_rng_states")
    if ranks.world > 1 and rank_states is not None and len(rank_states) == ranks.world:
        torch.set_rng_state(rank_states[ranks.rank])  # each rank's dropout goes on where it stopped
    else:
        torch.set_rng_state(state["torch_rng"])
        if ranks.world > 1:
            torch.manual_seed(run.train_config.seed + ranks.rank + state["step"])  # another number of ranks than before
    trainer.step, trainer.elapsed = state["step"], state["elapsed"]
    best = state.get("best")
    if best is not None:  # which evaluation is best goes on as if the run had never stopped
        trainer.best = {k: best[k] for k in ("step", "train_loss", "val_loss", "weights") if k in best}
        trainer.best_state = best["model"] if best["model"] is not None else {
            k: v.detach().clone() for k, v in model.state_dict().items()}
        trainer.bad_evals = best["bad_evals"]
    trainer.averaged = state.get("averaged")
    return trainer


def finished(run: Run) -> str | None:
    """Why a run cannot go on (made from runs, counted, stopped early, complete), or None when it can."""
    state, steps = run.state, run.train_config.steps
    if run.model_name in models.COMBINED:
        return f"an {run.model_name} is made from trained runs, not trained"
    if state["optimizer"] is None:
        return f"a {run.model_name} is counted in one pass"
    if state.get("stopped") in ("patience", "time_limit"):
        return f"the run stopped early ({state['stopped'].replace('_', ' ')}) at step {state['step']:,}"
    if state["step"] >= steps:
        return f"the run is complete ({state['step']:,} of {steps:,} steps)"
    return None


def make_ensemble(folders, out=None, weights=None) -> Run:
    """The runs' models as one ensemble run (the mixture of their next-character distributions, uniform unless
    weights are given), written to the run folder out: its val and train loss, and each member's, in
    summary.json. The runs share their data, so their split, and are not conditioned."""
    runs = [load_run(f) for f in folders]
    if not runs:
        raise ConfigError("members", "give at least one run")
    return write_ensemble(runs, new_run_folder(out, ["ensemble"]), weights)


def write_ensemble(runs: list[Run], folder: Path, weights=None) -> Run:
    first = runs[0]
    for run in runs[1:]:
        if run.corpus.items != first.corpus.items:
            raise UserError(f"{run.folder}: trained on other data than {first.folder}; an ensemble's runs share "
                            "their data and its split")
    for run in runs:
        if run.corpus.classes:
            raise UserError(f"{run.folder}: a conditioned run cannot be a member of an ensemble")
    config = models.EnsembleConfig(first.vocab.size, first.corpus.longest + 1,
                                   [{"model": r.model_name, "config": dataclasses.asdict(r.model.config)} for r in runs],
                                   [float(w) for w in weights or []])
    model = models.Ensemble(config, [r.model for r in runs]).eval()
    start = time.perf_counter()
    losses = {split: evaluate(model, examples(model, first.corpus, split)) for split in ("train", "val")}
    folder.mkdir(parents=True, exist_ok=True)
    name = "ensemble"
    save_checkpoint(folder / CHECKPOINT, checkpoint_state(name, model, first.corpus, first.train_config))
    write_atomic(folder / "config.json", json.dumps({"data": first.corpus.source, "model": name,
                                                      "model_config": dataclasses.asdict(config),
                                                      "members": [str(r.folder) for r in runs]}, indent=2) + "\n")
    members = [{"run": str(r.folder), "model": r.model_name, "params": models.num_params(r.model),
                "val_loss": r.evaluate("val")} for r in runs]
    summary = {"model": name, "params": models.num_params(model), "step": 0, "train_loss": losses["train"],
               "val_loss": losses["val"], "best_step": 0, "last_val_loss": losses["val"], "stopped": None,
               "time_s": round(time.perf_counter() - start, 3), "tokens_per_s": None, "members": members}
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_atomic(folder / "metrics.jsonl", json.dumps({"step": 0, "train_loss": losses["train"],
                                                       "val_loss": losses["val"]}) + "\n")
    return load_run(folder)


def new_run_folder(out, data) -> Path:
    """The folder a new run is written to: out, or runs/<data> (numbered if taken); never one that holds a run."""
    if not data:
        raise ConfigError("data", "no data given: a registered data set (names, spanish-places) or a text file")
    out = Path(out) if out is not None else default_run_folder(data)
    if out.exists() and not out.is_dir():
        raise ConfigError("out", f"{out} exists and is not a folder")
    if (out / CHECKPOINT).exists() or (out / RECIPE).exists():
        raise ConfigError("out", f"{out} already holds a run; choose another folder or resume it "
                                 "(nothing was overwritten)")
    return out


def default_run_folder(data) -> Path:
    stem = "+".join(Path(d).stem for d in data) or "run"
    folder, k = Path("runs") / stem, 1
    while folder.exists():
        k += 1
        folder = Path("runs") / f"{stem}-{k}"
    return folder


class Training:
    """A run about to be trained, new or resumed: its trainer, its corpus and its run folder, whose config.json
    is written when it is made. makemore.train() and `makemore train` both go through it."""

    def __init__(self, trainer, corpus: Corpus, model_name: str, folder: Path, note: str | None = None):
        self.trainer, self.corpus, self.model_name, self.folder = trainer, corpus, model_name, Path(folder)
        self.note = note  # what the auto recipe chose, in a line
        self.writer = RunWriter(self.folder, corpus.source, model_name, corpus, note=note) if trainer.ranks.lead else None
        if self.writer:
            self.writer.start(trainer)

    @classmethod
    def new(cls, spec: RunSpec, out=None) -> Training:
        out = new_run_folder(out, spec.data)
        corpus = spec.corpus or Corpus.load_many(spec.data, condition=spec.condition, ascii=spec.ascii)
        return cls(make_trainer(corpus, spec.model_name, spec.options, spec.train), corpus, spec.model_name, out,
                   spec.note)

    @classmethod
    def resume(cls, folder) -> Training:
        run = load_run(folder)
        return cls(resume_trainer(run), run.corpus, run.model_name, run.folder)

    def describe(self) -> list[str]:
        """What is about to happen, in a line or two, for the one who started it."""
        t = self.trainer
        if t.step:
            return [f"resuming {self.folder} at step {t.step:,} of {t.cfg.steps:,}"]
        ranks = f" x {t.ranks.world} processes" if t.ranks.world > 1 else ""
        lines = [f"{self.corpus.source}: {len(self.corpus.items):,} items, vocabulary of {self.corpus.vocab.size}; "
                 f"{len(t.train_data[0]):,} train / {len(t.val_data[0]):,} val examples",
                 f"model {self.model_name}: {models.num_params(t.model):,} parameters; {t.cfg.steps:,} steps on "
                 f"{t.device}{ranks}, evaluated every {t.cfg.eval_every:,}; run folder {self.folder}"
                 if t.optimizer is not None else
                 f"model {self.model_name}: counted in one pass on {t.device}; run folder {self.folder}"]
        return [self.note, *lines] if self.note else lines

    def run(self, callbacks=(), verbose: bool = True) -> Run | None:
        """Train to the end (or until a callback stops it); the run as its folder now holds it, on rank 0
        (None on torchrun's other ranks, which train in silence). verbose: print what it trains, and a progress
        bar."""
        lead = self.trainer.ranks.lead
        if self.writer:
            self.trainer.add_callback(self.writer)
        for fn in callbacks:
            self.trainer.add_callback(fn)
        bar = None
        try:
            if verbose and lead:
                print("\n".join(self.describe()), flush=True)
                if self.trainer.optimizer is not None:  # a counted model has no steps to show
                    bar = ProgressBar(self.trainer)
                    self.trainer.add_callback(bar)
            self.trainer.run()
        finally:
            if bar:
                bar.close()
            self.trainer.leave_ranks()
        return load_run(self.folder) if lead else None

    def interrupted(self) -> str:
        """Where an interrupted training stands, in a line."""
        saved = self.writer.saved_step if self.writer else None
        where = f"the checkpoint in {self.folder} is from step {saved}" if saved is not None else "no checkpoint was written"
        return f"interrupted at step {self.trainer.step}; {where}"


class EnsembleTraining:
    """An ensemble recipe about to be trained, new or resumed: its member runs trained in turn, each in
    members/<i>-<model> of the run folder, then mixed into the folder's own model. recipe.json holds the members'
    resolved configs from the start, so that --resume goes on from the member that was interrupted."""

    def __init__(self, folder: Path, members: list[dict], weights):
        self.folder, self.members, self.weights = Path(folder), members, list(weights or [])
        self.current: Training | None = None  # the member under way

    @classmethod
    def new(cls, spec: RunSpec, out=None) -> EnsembleTraining:
        if world_size() > 1:
            raise UserError("an ensemble recipe trains its members one after another; run it without torchrun")
        folder = new_run_folder(out, spec.data)
        members = [{"data": m.data, "model": m.model_name, "ascii": m.ascii, "options": m.options,
                    "train": dataclasses.asdict(m.train), "note": m.note} for m in spec.members]
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / RECIPE, json.dumps({"members": members, "weights": list(spec.weights)}, indent=2) + "\n")
        return cls(folder, members, spec.weights)

    @classmethod
    def resume(cls, folder) -> EnsembleTraining:
        folder = Path(folder)
        if (folder / CHECKPOINT).exists():
            raise UserError(f"{folder}: its members are trained and mixed; there is nothing to resume")
        recipe = json.loads((folder / RECIPE).read_text())
        return cls(folder, recipe["members"], recipe["weights"])

    def member_folders(self) -> list[Path]:
        return [self.folder / "members" / f"{i}-{m['model']}" for i, m in enumerate(self.members, 1)]

    def run(self, callbacks=(), verbose: bool = True) -> Run:
        """Train each member not yet trained (going on from one that was interrupted), then mix them."""
        runs = []
        for i, (member, folder) in enumerate(zip(self.members, self.member_folders()), 1):
            run = load_run(folder) if (folder / CHECKPOINT).exists() else None
            if run is None or not finished(run):
                if verbose:
                    print(f"member {i} of {len(self.members)}: {folder}", flush=True)
                if run is not None:
                    self.current = Training.resume(folder)
                else:
                    spec = RunSpec(member["data"], member["model"], member["options"], TrainConfig(**member["train"]),
                                   ascii=member["ascii"], note=member["note"])
                    self.current = Training.new(spec, folder)
                run = self.current.run(callbacks, verbose=verbose)
                self.current = None
            runs.append(run)
        return write_ensemble(runs, self.folder, self.weights)

    def interrupted(self) -> str:
        where = self.current.interrupted() if self.current else "no member was training"
        return f"{where}; makemore train --resume {self.folder} goes on with the ensemble recipe"


def new_training(spec: RunSpec, out=None) -> Training | EnsembleTraining:
    """A new run of spec, or of its members and then their ensemble."""
    return EnsembleTraining.new(spec, out) if spec.members else Training.new(spec, out)


def resume_training(folder) -> Training | EnsembleTraining:
    """A run that goes on from its folder, as if it had never stopped."""
    return EnsembleTraining.resume(folder) if (Path(folder) / RECIPE).exists() else Training.resume(folder)
