"""Issue "speed": its figures side by side, in one run, each with its ratio to the anchor.

    MAKEMORE_DATA=../shared/data python benchmarks/speed.py                       # 2 CPU cores: about 10 minutes
    MAKEMORE_DATA=... python benchmarks/speed.py --device cuda --lecture-steps 5000  # a GPU
    MAKEMORE_DATA=... python benchmarks/speed.py --compile 300 [--device cuda]      # torch.compile only

1. Time to val <= 1.9937 on names (the lecture's split, per-position targets, val over the whole split): the
   lecture's own loop (the anchor, always on the CPU) against `makemore train names --preset fast` (its
   [cuda.*] recipe on a GPU). Each is timed from loading the data to its final losses, after the imports;
   on a GPU the CUDA context is made first and timed apart. With --lecture-steps below 200,000 the lecture
   loop is shortened and is no anchor for time (it still gives the 76,579-parameter model for part 2).
2. Names per second: the 76,579-parameter tree (the lecture loop's model) and the default WaveNet
   (--preset wavenet, trained here; on the CPU also timed to the target); batched cached generation, beside
   naive batched generation and one name at a time (the lecture's loop for the tree, generate(n=1) for the
   WaveNet); and the `transformer` preset's model (2.68M parameters, trained --transformer-steps steps: enough
   to end names at names' lengths, which is all the timing needs), cached (a key/value cache per layer) and
   naive (the whole prefix again at every character). --generation-only runs only this last part.
3. (CPU) Peak RSS of `makemore train names` (the lecture's recipe, 5,000 steps) and of --preset fast, each in
   a fresh process; and --preset fast on 1 thread instead of 2.

With --compile STEPS it only times torch.compile against eager training (and CUDA graphs on a GPU), for the
first STEPS steps of --preset fast and --preset wavenet.
"""

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import torch

import makemore
from makemore import models
from makemore.data import Corpus
from makemore.draw import default_max_len
from makemore.sample import generate
from makemore.train import evaluate
from makemore.trainers import make_trainer

import lecture_loop
from anchor import library_tree, names_per_second, time_lecture_loop

TARGET = 1.9937
LECTURE_STEPS = 200_000


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def train_preset(name, device, race=False, steps=None, compile_mode=None, step_ends=None):
    """Train a shipped preset on names: (seconds from loading the data to the final losses, losses, trainer, the
    first check that reached TARGET or None). With race, val is checked every 100 steps (checks not timed).
    steps shortens the run; compile_mode trains through torch.compile(model, mode=compile_mode); step_ends, a
    list, gets the time at the end of every step (synchronized)."""
    spec = makemore.resolve(preset=name, device=device)
    if steps:
        spec = spec.override(dict(steps=steps, eval_every=steps))
    start = time.perf_counter()
    corpus = Corpus.load_many(spec.data)
    trainer = make_trainer(corpus, spec.model_name, spec.options, spec.train)
    if compile_mode:
        trainer.net = torch.compile(trainer.model, mode=None if compile_mode == "default" else compile_mode)
    if step_ends is not None:
        def end_of_step(t, event):
            if event == "step":
                sync(device)
                step_ends.append(time.perf_counter() - start)
        trainer.add_callback(end_of_step)
    hit, checking = None, [0.0]
    if race:
        def check(t, event):
            nonlocal hit
            if event == "step" and t.step % 100 == 0 and hit is None:
                sync(device)
                s = time.perf_counter()
                val = evaluate(t.model, t.val_data)
                checking[0] += time.perf_counter() - s
                if val <= TARGET:
                    hit = dict(step=t.step, val=val, time=s - start - checking[0] + (time.perf_counter() - s))
        trainer.add_callback(check)
    result = trainer.run()
    sync(device)
    trainer.name = spec.model_name
    return time.perf_counter() - start - checking[0], result, trainer, hit


def peak_rss_mb(*argv):
    """Peak RSS of `makemore ARGV` in a fresh process, in MB: its VmHWM (ru_maxrss would count the RSS of this
    process, which the child is forked from)."""
    code = ("import sys; from makemore.cli import main; code = main(sys.argv[1:]); "
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True).stdout
    return int(out.split("VmHWM:")[-1].split()[0]) / 1024


def describe(trainer):
    c = trainer.cfg
    return (f"{trainer.name} {models.num_params(trainer.model):,} params, {c.steps:,} steps of {c.batch_size} "
            f"{'words' if trainer.train_data[1].ndim == 2 else 'windows'}, {c.optimizer}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--lecture-steps", type=int, default=LECTURE_STEPS)
    parser.add_argument("--batch", type=int, help="names per batched generation (default: 20,000 on the CPU, "
                        "1,000,000 on a GPU)")
    parser.add_argument("--transformer-steps", type=int, default=300, help="training steps of the transformer "
                        "preset's model before its names/s are timed (default 300)")
    parser.add_argument("--generation-only", action="store_true", help="only the transformer preset's names/s")
    parser.add_argument("--compile", type=int, metavar="STEPS", help="only time torch.compile against eager "
                        "training for STEPS steps of --preset fast and --preset wavenet")
    args = parser.parse_args()
    device, batch = args.device, args.batch or (20_000 if args.device == "cpu" else 1_000_000)
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}")
    if device == "cuda":
        start = time.perf_counter()
        torch.zeros(1, device="cuda")
        sync(device)
        print(f"CUDA context: {time.perf_counter() - start:.2f} s (before the timed runs)")
    if args.compile:
        return compile_section(device, args.compile)
    corpus = Corpus.load("names")
    if args.generation_only:
        return transformer_generation(corpus, device, batch, args.transformer_steps)

    print(f"\n== 1. time to val <= {TARGET} on names")
    t_lecture, val_lecture, lecture_model, itos = time_lecture_loop(corpus.items, args.lecture_steps)
    anchor = args.lecture_steps == LECTURE_STEPS
    note = "" if anchor else f"  ({args.lecture_steps:,} steps only: not an anchor)"
    print(f"lecture loop    76,579 params, {args.lecture_steps:,} steps of 32 windows, SGD (CPU): "
          f"{t_lecture:7.1f} s  val {val_lecture:.4f}{note}")
    t_fast, result, trainer, _ = train_preset("fast", device)
    reached = "reached" if result["val_loss"] <= TARGET else "NOT reached"
    print(f"--preset fast   {describe(trainer)} ({device}): {t_fast:7.2f} s  "
          f"val {result['val_loss']:.4f} ({reached}), train {result['train_loss']:.4f}")
    if anchor:
        print(f"speed-up: {t_lecture / t_fast:.1f}x the lecture's loop (target 25x)")

    wavenet_time, _, wavenet_trainer, hit = train_preset("wavenet", device, race=device == "cpu")
    line = f"--preset wavenet {describe(wavenet_trainer)} ({device}): {wavenet_time:.1f} s for all its steps"
    if hit:
        line += f"; val {hit['val']:.4f} at step {hit['step']:,} after {hit['time']:.1f} s"
        line += f" ({t_lecture / hit['time']:.1f}x)" if anchor else ""
    print(line)

    print(f"\n== 2. names per second ({device}, batches of {batch:,})")
    tree = library_tree(lecture_model, corpus.vocab.size).to(device)
    wavenet = wavenet_trainer.model.eval()
    max_len = default_max_len(corpus.longest)
    generator = torch.Generator(device=device)

    def batched(model, cached):
        def fn(n):
            generator.manual_seed(1)
            return generate(model, corpus.vocab, n, max_len=max_len, cached=cached, generator=generator)
        return fn

    def one_at_a_time(model):
        return lambda n: [name for _ in range(n) for name in batched(model, True)(1)]

    for label, model, one_label, one in (
        ("76,579-param tree", tree, "the lecture's loop (CPU)", lambda n: lecture_loop.lecture_sample(lecture_model, itos, n)),
        (f"WaveNet {models.num_params(wavenet):,} params", wavenet, "generate(n=1), cached", one_at_a_time(wavenet)),
    ):
        batched(model, True)(1000)  # warm-up: kernels loaded, memory pooled
        single = names_per_second(one, 200, lambda: sync(device))
        naive = names_per_second(batched(model, False), batch, lambda: sync(device))
        cached = names_per_second(batched(model, True), batch, lambda: sync(device))
        print(f"{label}:")
        print(f"  one at a time, {one_label + ':':28} {single:12,.0f} names/s")
        print(f"  naive batched:{'':28} {naive:12,.0f} names/s  ({naive / single:,.0f}x)")
        print(f"  cached batched:{'':27} {cached:12,.0f} names/s  ({cached / single:,.0f}x one at a time, "
              f"{cached / naive:.2f}x naive)")

    transformer_generation(corpus, device, batch, args.transformer_steps)

    if device == "cpu":
        print("\n== 3. peak RSS, each in a fresh process")
        with tempfile.TemporaryDirectory() as tmp:
            lecture = peak_rss_mb("train", "names", "--steps", "5000", "--samples", "0", "--out", f"{tmp}/a")
            fast = peak_rss_mb("train", "names", "--preset", "fast", "--samples", "0", "--out", f"{tmp}/b")
        print(f"makemore train names (lecture recipe, 5,000 steps): {lecture:6.0f} MB")
        print(f"makemore train names --preset fast:                 {fast:6.0f} MB   (limit 1,024 MB)")

        print("\n== what the thread count buys (--preset fast)")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        t_one, result, _, _ = train_preset("fast", device)
        torch.set_num_threads(threads)
        print(f"1 thread: {t_one:.2f} s, val {result['val_loss']:.4f}; {threads} threads: {t_fast:.2f} s "
              f"({t_one / t_fast:.2f}x)")


def transformer_generation(corpus, device, batch, steps):
    """names/s of the transformer preset's model (issue "generation"): cached against naive, the same names."""
    seconds, result, trainer, _ = train_preset("transformer", device, steps=steps)
    batch = min(batch, 100_000)  # its key/value cache is 1.4 MB a name: 1,000,000 names would want 137 GiB
    model = trainer.model.eval()
    max_len = default_max_len(corpus.longest)
    generator = torch.Generator(device=device)

    def batched(cached):
        def fn(n):
            generator.manual_seed(1)
            return generate(model, corpus.vocab, n, max_len=max_len, cached=cached, generator=generator)
        return fn

    made = batched(True)(1000)  # warm-up
    assert made == batched(False)(1000), "cached and naive generation differ"
    mean_len = statistics.mean(map(len, made))
    naive = names_per_second(batched(False), batch, lambda: sync(device))
    cached = names_per_second(batched(True), batch, lambda: sync(device))
    print(f"\ntransformer preset: {describe(trainer)}, trained {seconds:.0f} s to val {result['val_loss']:.4f} "
          f"(names of {mean_len:.1f} characters on average); batches of {batch:,} on {device}:")
    print(f"  naive batched:  {naive:12,.0f} names/s")
    print(f"  cached batched: {cached:12,.0f} names/s  ({cached / naive:.2f}x naive)")


def time_steps(name, device, steps, mode):
    """(first step's end, median step, total, val) of a preset's first steps, eager or compiled with mode. Run in a
    fresh process with an empty compile cache: what a user's first compiled run pays."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        ends = []
        total, result, _, _ = train_preset(name, device, steps=steps, compile_mode=None if mode == "eager" else mode,
                                           step_ends=ends)
    return ends[0], statistics.median(b - a for a, b in zip(ends[10:], ends[11:])), total, result["val_loss"]


def compile_section(device, steps):
    """What torch.compile buys: each preset's first steps eager and compiled (on a GPU also mode
    "reduce-overhead", which replays CUDA graphs), each in a fresh process."""
    modes = ["eager", "default"] + (["reduce-overhead"] if device == "cuda" else [])
    print(f"\n== what torch.compile buys ({device}, {steps} steps of each preset, each in a fresh process)")
    for name in ("fast", "wavenet"):
        for mode in modes:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
                first, per_step, total, val = fresh.submit(time_steps, name, device, steps, mode).result()
            print(f"--preset {name:8} {mode:16} first step done after {first:6.2f} s, then {per_step * 1e3:6.2f} "
                  f"ms a step (median); {total:6.2f} s in all, val {val:.4f}")


if __name__ == "__main__":
    main()
