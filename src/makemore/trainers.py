"""Making a trainer: the model built from its settings and the list, and the trainer of the run's backend; the
teacher's targets of a distilled run; and a trainer that goes on from a run's checkpoint."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from makemore import models
from makemore.auto import ngram_context_for
from makemore.config import TrainConfig
from makemore.data import IGNORE, Corpus, examples, sequences
from makemore.errors import ConfigError, UserError
from makemore.models.base import position_logits
from makemore.ranks import world_size
from makemore.run import Run, load_run
from makemore.train import Trainer

RESUMABLE = ("steps", "time_limit", "patience", "device", "checkpoint_every")  # what a run may change as it goes on


def make_trainer(corpus: Corpus, model_name: str, model_options: dict, cfg: TrainConfig):
    """The model built as the lecture builds it (seeded generator first, then layers in order), on the lecture's
    split of the corpus, and the trainer of cfg.backend, ready to run."""
    options = dict(model_options)
    if corpus.classes:
        if not models.conditioned(model_name):
            conditioned = [name for name in models.MODELS if models.conditioned(name)]
            raise ConfigError("condition", f"model {model_name!r} takes no class; conditioned models: "
                                           f"{', '.join(conditioned)}")
        options["n_classes"] = len(corpus.classes)
    model_cfg = models.make_config(model_name, vocab_size=corpus.vocab.size, **options)
    if model_cfg.block_size == 0:  # "see the whole item": the longest item and its end token
        model_cfg.block_size = corpus.longest + 1
    if getattr(model_cfg, "ngram_context", None) == 0:  # a network + n-gram model's n-gram, sized for the list
        model_cfg.ngram_context = ngram_context_for(corpus, model_cfg.discount)
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


def resume_trainer(run: Run, changes: dict | None = None) -> Trainer:
    """A Trainer that goes on from the run's checkpoint as if it had never stopped: the same weights, optimizer
    state, step, batch stream and random state. changes: new values of settings in RESUMABLE (more steps train
    further, the schedule stretched to them; a new time limit or patience; another device); any other is a
    ConfigError naming it."""
    changes = {k: v for k, v in (changes or {}).items() if v is not None}
    for key in changes:
        if key not in RESUMABLE:
            raise ConfigError(key, "cannot change as a run goes on: it trains as it began; only {steps}, {time_limit}, "
                                   "{patience}, {device} and {checkpoint_every} can", mentions=RESUMABLE)
    if run.train_config.backend != "torch":
        raise UserError(f"{run.folder}: a run of the {run.train_config.backend} backend cannot be resumed "
                        "(its optimizer state is not saved); train again")
    cfg = dataclasses.replace(run.train_config, **changes)
    done = finished(run, cfg)
    if done:
        raise UserError(f"{run.folder}: {done}; there is nothing to resume")
    model = run.model
    model.load_state_dict(run.state["model"])  # the last weights, whichever the run was loaded with
    trainer = Trainer.start(model, cfg, examples(model, run.corpus, "train"), examples(model, run.corpus, "val"),
                            torch.Generator(), teacher=teacher_targets(cfg.teacher, run.corpus, model))
    trainer.load_state_dict(run.state)
    return trainer


def finished(run: Run, cfg: TrainConfig | None = None) -> str | None:
    """Why a run cannot go on with the settings cfg (by default its own): made from runs, counted, stopped early
    (by patience or a time limit, unless cfg changes it), complete; None when it can."""
    state, cfg = run.state, cfg or run.train_config
    if run.model_name in models.COMBINED:
        return f"an {run.model_name} is made from trained runs, not trained"
    if state["optimizer"] is None:
        return f"a {run.model_name} is counted in one pass"
    stopped = state.get("stopped")
    if stopped in ("patience", "time_limit") and getattr(cfg, stopped) == getattr(run.train_config, stopped):
        return f"the run stopped early ({stopped.replace('_', ' ')}) at step {state['step']:,}"
    if state["step"] >= cfg.steps:
        return f"the run is complete ({state['step']:,} of {cfg.steps:,} steps); more steps train it further"
    return None
