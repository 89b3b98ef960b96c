"""Issue "own lists": the default recipe (auto) against the presets, on lists of every size, as a user would
train them: `makemore train my_list.txt` against `--preset fast | wavenet | best-small | lecture` and the bigram.

    MAKEMORE_DATA=../shared/data python benchmarks/own_lists.py [--sources names,spanish-places,english-words]
        [--sizes 50,300,1000,3000,10000,0] [--recipes auto,fast,wavenet,best-small,lecture,bigram,ngram,auto+ngram]
        [--threads 1]
        [--part K/N] [--out results.jsonl]

The ladder: each source at 50, 300, 1,000, 3,000 and 10,000 items and whole (size 0); a size at or above the
source's own is its whole list. A rung's items are a fixed random sample (random.Random(1234)), written to a
text file that every recipe trains on, as a user's list would be. Per rung and recipe: val and test (of the
model `makemore sample` reads: the run's best), training time (wall and CPU seconds; with one thread the CPU
time does not count what other processes take), the number of steps, and the novelty of 1,000 samples (the
share not in the list). The lecture keeps its 200,000 steps, as shipped.

--part K/N runs every N-th rung from the K-th (1-based), so that N processes can share the ladder (one per
core, with --threads 1); --out appends each row as a JSON line, and --table FILE... prints the table of rows
already made, with the issue's targets checked.
"""

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import makemore
from makemore.data import read_source

SOURCES = ("names", "spanish-places", "english-words")
SIZES = (50, 300, 1000, 3000, 10000, 0)
RECIPES = ("auto", "fast", "wavenet", "best-small", "lecture", "bigram", "ngram", "auto+ngram")


def rungs(sources, sizes):
    """(source, size) of each rung, whole lists as size 0; a size at or above the source's own is its whole list."""
    out = []
    for source in sources:
        total = len(read_source(source))
        for size in sizes:
            size = 0 if size >= total else size
            if (source, size) not in out:
                out.append((source, size))
    return out


def write_rung(source, size, folder: Path) -> Path:
    items = list(read_source(source))
    if size:
        items = random.Random(1234).sample(items, size)
    path = folder / f"{source}-{size or 'whole'}.txt"
    path.write_text("\n".join(items) + "\n", encoding="utf-8")
    return path


def train(recipe, data: Path, out: Path) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    if recipe == "auto+ngram":  # the default recipe's GRU and the default n-gram, mixed with equal weights
        members = [makemore.train(data, out=out.with_name(out.name + "-" + name), verbose=False, device="cpu", **kind)
                   for name, kind in (("gru", {}), ("ngram", dict(model="ngram")))]
        run = makemore.ensemble([m.folder for m in members], out=out)
    else:
        kind = {"auto": {}, "bigram": dict(model="bigram"), "ngram": dict(model="ngram")}.get(recipe, dict(preset=recipe))
        run = makemore.train(data, out=out, verbose=False, device="cpu", **kind)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    samples = run.generate(1000, seed=0)
    known = run.known()
    summary = json.loads((out / "summary.json").read_text())
    return dict(recipe=recipe, val=run.evaluate("val"), test=run.evaluate("test"), wall=wall, cpu=cpu,
                steps=summary["step"], best_step=summary["best_step"], stopped=summary["stopped"],
                novelty=sum(s not in known for s in samples) / len(samples), model=run.model_name,
                auto=json.loads((out / "config.json").read_text()).get("auto"))


def table(rows):
    """The ladder's table, and the issue's targets checked on it."""
    by_rung = {}
    for r in rows:
        by_rung.setdefault((r["source"], r["size"]), {})[r["recipe"]] = r
    recipes = [r for r in RECIPES if any(r in v for v in by_rung.values())]
    print("| rung | items | " + " | ".join(recipes) + " |")
    print("|---|---:|" + "---|" * len(recipes))
    for (source, size), got in by_rung.items():
        items = next(iter(got.values()))["items"]
        cells = [f"{got[r]['val']:.4f} / {got[r]['test']:.4f}, {got[r]['cpu']:.0f} s, {100 * got[r]['novelty']:.0f}%"
                 if r in got else "" for r in recipes]
        print(f"| {source} {size or 'whole'} | {items:,} | " + " | ".join(cells) + " |")
    print("\ncells: val / test, training time (CPU seconds), novelty of 1,000 samples")
    presets = [r for r in recipes if r not in ("auto", "bigram", "ngram", "auto+ngram")]
    complete = {k: v for k, v in by_rung.items() if all(r in v for r in ["auto", *presets])}
    if not complete:
        return
    print(f"\ntargets, over the {len(complete)} complete rungs:")
    for (source, size), got in complete.items():
        best = min(presets, key=lambda r: got[r]["val"])
        lecture = got.get("lecture")
        time_ratio = got["auto"]["cpu"] / lecture["cpu"] if lecture else float("nan")
        bigram = got.get("bigram")
        checks = [f"auto - best preset ({best}) {got['auto']['val'] - got[best]['val']:+.4f}",
                  f"auto time / lecture time {time_ratio:.3f}"]
        if bigram and size in (50, 300):
            checks.append(f"auto - bigram {got['auto']['val'] - bigram['val']:+.4f}")
        print(f"  {source} {size or 'whole'}: " + "; ".join(checks))
    means = {r: statistics.mean(v[r]["val"] for v in complete.values()) for r in ["auto", *presets]}
    print("  mean val over the ladder: " + ", ".join(f"{r} {m:.4f}" for r, m in means.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--part", default="1/1")
    parser.add_argument("--out", type=Path, help="append each row to this JSON-lines file")
    parser.add_argument("--table", type=Path, nargs="+", help="only print the table of these JSON-lines files")
    args = parser.parse_args()
    if args.table:
        table([json.loads(line) for path in args.table for line in path.read_text().splitlines() if line])
        return
    torch.set_num_threads(args.threads)
    k, n = map(int, args.part.split("/"))
    ladder = rungs(args.sources.split(","), [int(s) for s in args.sizes.split(",")])[k - 1 :: n]
    print(f"{len(ladder)} rungs, {args.threads} thread(s), torch {torch.__version__}, {time.strftime('%Y-%m-%d')}",
          file=sys.stderr, flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="makemore-own-lists-") as tmp:
        for source, size in ladder:
            data = write_rung(source, size, Path(tmp))
            items = len(data.read_text(encoding="utf-8").splitlines())
            for recipe in args.recipes.split(","):
                row = dict(source=source, size=size, items=items,
                           **train(recipe, data, Path(tmp) / f"{data.stem}-{recipe}"))
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
    table(rows)


if __name__ == "__main__":
    main()
