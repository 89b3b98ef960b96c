"""The command line: makemore train | eval | sample | score | ensemble | runs | plot | sweep | diagnose | serve.

Argparse only (flags.py): each command parses, calls the library and prints. The library's errors name fields,
and main() spells each as the flag that sets it, in one line with exit code 2.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import makemore
from makemore import models
from makemore.callbacks import TensorBoard, UpdateRatios, require_tensorboard
from makemore.config import TRAIN_FIELDS
from makemore.errors import ConfigError, UserError
from makemore.flags import build_parser, speller
from makemore.lists import read_items
from makemore.ranks import threads_per_process
from makemore.runfolder import RUN_FILES, read_run_files

# ----------------------------------------------------------------------------- train


def cmd_train(args) -> int:
    settings = {name: getattr(args, name) for name in [*TRAIN_FIELDS, *models.OPTIONS, "condition", "ascii"]}
    if args.resume:
        if args.data or args.config or args.preset or args.model:
            raise ConfigError("resume", "the run folder holds its data and config; give neither data nor {config}, "
                                        "{preset} or {model}", mentions=("config", "preset", "model"))
        training = makemore.resume(args.resume, **{k: v for k, v in settings.items() if v is not None})
    else:
        if args.tensorboard:
            require_tensorboard()  # before the run folder is made
        training = makemore.start(args.data, preset=args.preset, config=args.config, model=args.model, out=args.out,
                                  **settings)
    callbacks = []
    if isinstance(training, makemore.EnsembleTraining):
        if args.tensorboard or args.track_stats:
            raise ConfigError("tensorboard" if args.tensorboard else "track_stats",
                              "not for an ensemble recipe: give it to a member's own run")
    elif training.writer:
        if args.tensorboard:
            callbacks.append(TensorBoard(training.folder))
        if args.track_stats:
            callbacks.append(UpdateRatios(training.folder, training.trainer))
    try:
        run = training.run(callbacks)
    except KeyboardInterrupt as e:
        why = getattr(e, "why", "SIGINT")
        print(f"\n{training.interrupted()}; makemore train --resume {training.folder} goes on", file=sys.stderr)
        return 143 if why == "SIGTERM" else 130
    finally:
        for fn in callbacks:
            getattr(fn, "close", lambda: None)()
    if run is None:  # torchrun's other ranks: rank 0 reports
        return 0
    print_result(run)
    if args.samples:
        for cls in run.classes or [None]:
            if cls is not None:
                print(f"class {cls}:")
            print_samples(run, args.samples, seed=run.train_config.seed, cls=cls)
    files = "members/: each member's run" if run.model_name == "ensemble" else "metrics.jsonl, loss.png"
    print(f"saved {run.folder}/ (model.pt, config.json, summary.json, {files})")
    return 0


def print_result(run):
    """How a training ended, from the trained run's summary: why it stopped, which model it kept, its losses."""
    s, cfg = run.summary, run.train_config
    for i, member in enumerate(s.get("members", []), 1):
        print(f"member {i}: {member['model']}, {member['params']:,} parameters, weight {member['weight']:.3f}, "
              f"val {member['val_loss']:.4f}")
    if s.get("members"):
        print(f"ensemble of {len(s['members'])}: {s['params']:,} parameters, weights chosen on val")
    if s.get("stopped") in ("patience", "time_limit"):
        why = {"patience": f"{cfg.patience} evaluations without a lower val loss",
               "time_limit": f"the time limit of {cfg.time_limit:g} s"}[s["stopped"]]
        print(f"stopped at step {s['step']:,} of {cfg.steps:,}: {why}")
    kept = "the moving average of the weights" if s.get("best_weights") == "average" else "the best model"
    if s.get("best_step", s["step"]) != s["step"]:
        print(f"kept {kept}, of step {s['best_step']:,} (the last evaluation, of step {s['step']:,}: "
              f"train {s['last_train_loss']:.4f}, val {s['last_val_loss']:.4f})")
    elif s.get("best_weights") == "average":
        print(f"kept {kept}, evaluated better than the weights themselves")
    if "ngram_share" in s:
        print(f"mixed with the n-gram at a share of {s['ngram_share']:.2f}, discount {s['ngram_discount']:g} "
              "(both chosen on val)")
    print(f"train {s['train_loss']:.4f}")
    print(f"val {s['val_loss']:.4f}")
    print(f"test {s['test_loss']:.4f}")


# ----------------------------------------------------------------------------- eval and sample


def cmd_eval(args) -> int:
    run = makemore.load(args.run, device=args.device)
    for split in args.split:
        print(f"{split} {run.evaluate(split):.4f}")
    return 0


def print_samples(run, n: int, novel_only: bool = False, **options):
    """The names as they are found, * marking those in the training data (so memory does not grow with n), then
    how many of them are new; a line on stderr when the filters left fewer than n."""
    known = run.known(options.get("cls"))

    def show(names):
        print("\n".join(f"{name} *" if name in known else name if name else '""' for name in names), flush=True)

    drawn = run.draw(n, novel_only=novel_only, on_names=show, **options)
    rounds = f"{drawn.rounds} round{'s' * (drawn.rounds != 1)}"
    if drawn.found:  # a round draws more rows than it needs where filters reject some: the rows are all counted
        extra = f"; {drawn.rows:,} drawn in {rounds}" if drawn.rows > drawn.found else ""
        if drawn.unstyled:
            extra += f", {drawn.unstyled:,} of them not written as the list writes (--no-list-style keeps them)"
        marks = "; * marks those that are" if drawn.novel_found < drawn.found else ""
        print(f"novelty {100 * drawn.novel_found / drawn.found:.1f}% ({drawn.novel_found:,} of {drawn.found:,} "
              f"names are not in the training data{marks}{extra})")
    guidance = drawn.guidance or {}
    if guidance.get("mode") == "guided":
        g = guidance
        estimate = "too few to estimate its probability" if g["probability"] is None else \
            f"its probability about {g['probability']:.2g}"
        print(f"the shape is rare ({g['found']:,} of {g['tried']:,} names drawn matched it): the names were drawn "
              f"guided by it and corrected toward the model's own by {g['corrected']} ({g['candidates']:,} candidates, "
              f"{g['effective']:,.1f} effective; {estimate})", file=sys.stderr)
    if not drawn.complete:
        print(f"found {drawn.found:,} of {n:,} names that pass the filters, in {rounds} of drawing "
              f"({drawn.rows:,} names drawn); loosen them, or give more --seconds", file=sys.stderr)


def cmd_sample(args) -> int:
    run = makemore.load(args.run, device=args.device)
    given = {k: getattr(args, k) for k in ("temperature", "top_k", "top_p", "prefix", "min_len", "max_len", "seconds",
                                           "pattern", "ends_with", "min_distance", "contains")}
    print_samples(run, args.n, seed=args.seed, novel_only=args.novel_only, cls=args.cls, unique=args.unique,
                  exclude=args.exclude or (), list_style=args.list_style, **{k: v for k, v in given.items() if v is not None})
    return 0


def cmd_score(args) -> int:
    words = list(args.words) + (read_items(args.file) if args.file else [])
    if not words:
        raise UserError("give words to score, or --file")
    scores = makemore.load(args.run, device=args.device).score(words, cls=args.cls)
    width = max(len("word"), *(len(s.word) for s in scores))
    print(f"{'word':{width}}  {'logprob':>8}  {'per char':>8}  surprisal of each character (nats; the end last)")
    for s in scores:
        each = " ".join(f"{c}{x:.1f}" for c, x in zip([*s.word, "⏎"], s.surprisal))
        print(f"{s.word:{width}}  {s.logprob:>8.3f}  {s.mean:>8.4f}  {each}")
    return 0


# ----------------------------------------------------------------------------- runs, plots, sweeps, diagnostics


def cmd_export(args) -> int:
    run = makemore.load(args.run)
    out = run.export(args.web, format="web") if args.web else run.export(args.out, format=args.format)
    print(f"exported {args.run} to {out}/ ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return 0


def cmd_ensemble(args) -> int:
    run = makemore.ensemble(args.runs, out=args.out, weights=args.weights)
    print_result(run)
    print(f"saved {run.folder}/")
    return 0


def cmd_runs(args) -> int:
    """Every run folder in a folder, best val loss first; a folder that cannot be read is listed last, with why."""
    if not args.folder.is_dir():
        raise UserError(f"{args.folder}: no such folder")
    rows, unread = [], []
    for folder in sorted(p for p in args.folder.iterdir() if p.is_dir() and any((p / f).exists() for f in RUN_FILES)):
        try:
            config, summary, _ = read_run_files(folder)
            rows.append((summary.get("val_loss") or float("inf"), folder.name, summary, config))
        except UserError as e:
            unread.append((folder.name, str(e).removeprefix(f"{folder}: ")))
    if not rows and not unread:
        print(f"{args.folder}: no runs")
        return 0
    width = max(len(name) for name in [*(r[1] for r in rows), *(u[0] for u in unread), "run"])
    print(f"{'run':{width}}  {'model':17} {'params':>8} {'steps':>8} {'train':>7} {'val':>7} {'test':>7} "
          f"{'best at':>8} {'last val':>8} {'time':>8} {'tokens/s':>9}")
    number = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for val, name, s, config in sorted(rows, key=lambda r: r[0]):
        print(f"{name:{width}}  {config.get('model', '?'):17} {number(s.get('params'), ',d'):>8} "
              f"{number(s.get('step'), ',d'):>8} {number(s.get('train_loss'), '.4f'):>7} "
              f"{number(s.get('val_loss'), '.4f'):>7} {number(s.get('test_loss'), '.4f'):>7} "
              f"{number(s.get('best_step', s.get('step')), ',d'):>8} {number(s.get('last_val_loss'), '.4f'):>8} "
              f"{number(s.get('time_s'), '.1f'):>7}s {number(s.get('tokens_per_s'), ',.0f'):>9}")
    for name, why in unread:
        print(f"{name:{width}}  (not read: {why})")
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
    from makemore.sweep import Sweep, run_sweep, storage_url, table

    folder = args.out or Path("sweeps") / args.config.stem
    if folder.exists() and not folder.is_dir():
        raise ConfigError("out", f"{folder} exists and is not a folder")
    sweep = Sweep(args.config, args.space, folder, storage_url(folder, args.storage), args.study or folder.name,
                  args.trials, threads_per_process(args.workers), args.grace)
    best = run_sweep(sweep, args.workers)
    print(table(folder))
    if best:
        print(f"best: trial {best['number']}, val {best['val_loss']:.4f}; makemore train --config {folder / 'best.toml'}")
    print(f"wrote {folder}/ (best.toml, trials.csv, history.png, trials/)")
    return 0


def cmd_diagnose(args) -> int:
    from makemore.diagnose import diagnose

    result = diagnose(makemore.load(args.run), args.batches, args.batch_size, args.init, args.out)
    print(f"{'layer':28} {'kind':10} {'mean':>7} {'std':>6} {'saturated':>9} {'grad std':>9}")
    for r in result.stats["layers"]:
        sat = f"{100 * r['saturated']:.1f}%" if r["saturated"] is not None else "-"
        grad = f"{r['grad_std']:.2e}" if r["grad_std"] is not None else "-"
        print(f"{r['layer']:28} {r['kind']:10} {r['mean']:>+7.3f} {r['std']:>6.3f} {sat:>9} {grad:>9}")
    for r in result.stats["weights"]:
        print(f"weight {r['weight']:30} grad:data {r['grad_to_data']:.2e}")
    if not result.has_update_ratios:
        print(f"no update:data ratios in {args.run}: train with --track-stats to record them")
    print(f"wrote {result.folder}/ ({', '.join(result.written)})")
    return 0


def cmd_serve(args) -> int:
    try:
        from makemore.serve import is_run_folder, serve
        from makemore.workspace_app import serve_workspace
    except ImportError as e:
        raise UserError(f"serve: {e.name} is not installed; pip install fastapi uvicorn") from None
    with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as s:  # a clear message, not uvicorn's
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((args.host, args.port))
        except OSError as e:
            raise UserError(f"--host {args.host} --port {args.port}: cannot listen there ({e.strerror})") from None
    if args.run is None or args.run.is_dir() and not is_run_folder(args.run):  # a folder of runs: the workspace
        if args.workers != 1:
            raise ConfigError("workers", "a workspace is served by one process (it trains in processes of its own)")
        serve_workspace(args.run or Path("runs"), args.host, args.port, device=args.device)
    else:
        serve(args.run, args.host, args.port, device=args.device, workers=args.workers)
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "sample": cmd_sample, "score": cmd_score, "ensemble": cmd_ensemble,
            "export": cmd_export, "runs": cmd_runs, "plot": cmd_plot, "sweep": cmd_sweep, "diagnose": cmd_diagnose,
            "serve": cmd_serve}


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse's one-line error (2), or --help (0)
        return e.code
    try:
        return COMMANDS[args.command](args)
    except ConfigError as e:
        print(f"makemore {args.command}: error: {e.render(speller(parser, args.command))}", file=sys.stderr)
        return 2
    except UserError as e:
        print(f"makemore {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder that cannot be written (read-only, full, not a folder): what was saved stays
        where = e.filename or "a file"
        print(f"makemore {args.command}: error: {where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
