"""The Python API: resolve what a run is, start or train it, resume it, load a trained one, mix several.

    import makemore
    run = makemore.train("my_list.txt", out="runs/mine")     # the default recipe; or preset=, model=, **settings
    run = makemore.load("runs/mine")
    run.generate(20, temperature=0.8, prefix="ma")
    run.evaluate("val")

Every function takes what another gives: resolve() gives a RunSpec that start() and train() take, train() and
load() give a Run that ensemble() takes.
"""

from __future__ import annotations

import dataclasses

from makemore.config import RunSpec
from makemore.ensembles import make_ensemble
from makemore.recipes import resolve
from makemore.run import Run, load_run
from makemore.training import EnsembleTraining, Training
from makemore.training import resume as resume_training
from makemore.training import start as start_training


def start(data=None, *, preset: str | None = None, config=None, model: str | None = None, out=None,
          plot: bool = True, **settings) -> Training | EnsembleTraining:
    """A run about to train, its folder made and its config.json written: .describe() says what it will do,
    .run(callbacks, verbose) trains it and gives the trained Run. data: what train() takes, or a RunSpec from
    resolve() (settings then override its training fields and model options)."""
    if isinstance(data, RunSpec):
        if preset is not None or config is not None or model is not None:
            raise TypeError("a RunSpec is resolved already: give no preset, config or model with it")
        spec = dataclasses.replace(data.override(settings), note=None) if settings else data  # no stale auto line
    else:
        spec = resolve(data, preset=preset, config=config, model=model, **settings)
    return start_training(spec, out, plot)


def train(data=None, *, preset: str | None = None, config=None, model: str | None = None, out=None,
          verbose: bool = True, callbacks=(), **settings) -> Run:
    """Train a model on a list of words and return the trained run (also written to its run folder).

    data: a registered data set ("names", "spanish-places"), a text file with one item per line, or a list of
        them (with condition="file", each file is a class); or a RunSpec from resolve().
    preset: a shipped recipe (makemore.presets()); config: a TOML run description; model: a model's name
        (makemore.MODELS). Without them: the auto recipe, chosen from the list (makemore.resolve says what).
        A preset or config with [[members]] (the best preset) trains each member run and then their ensemble.
    settings: any training field (steps, batch_size, lr, optimizer, schedule, weight_decay, seed, device, ...),
        any option of the model (n_embd, n_hidden, dropout, ...), condition or ascii; they override the preset
        or config. A bad value raises makemore.ConfigError naming the field.
    out: the run folder (default: runs/<data>, numbered if taken); an existing run is never overwritten.
    verbose: print what it trains, a progress bar and the evaluations. callbacks: fn(trainer, event) functions
        called at each 'step', 'log', 'eval', 'checkpoint' and 'end'.
    """
    return start(data, preset=preset, config=config, model=model, out=out, **settings).run(callbacks, verbose=verbose)


def resume(folder, **changes) -> Training | EnsembleTraining:
    """A run that goes on from its folder's checkpoint as if it had never stopped; .run() trains it. changes:
    steps (more train it further), time_limit, patience, device; another setting is a ConfigError naming it."""
    return resume_training(folder, **changes)


def load(folder, device: str = "cpu") -> Run:
    """A trained run from its folder, ready to generate, evaluate and serve (device: cpu, cuda or auto)."""
    return load_run(folder, device=device)


def ensemble(runs, out=None, weights=None) -> Run:
    """Trained runs (Run objects or their folders, of any families, on the same data) as one run whose
    next-character distribution is their mixture: it samples, scores, evaluates and serves as any run. Without
    weights, the runs' parts (a default run's network and n-gram) are mixed with weights chosen on val (the
    summary's test loss is the figure to compare). It is written to out (default: runs/ensemble, numbered if
    taken), with its losses and each member's."""
    return make_ensemble(list(runs), out, weights)


__all__ = ["resolve", "start", "train", "resume", "load", "ensemble"]
