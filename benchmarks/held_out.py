"""Small lists judged on thousands of words: a list's val and test splits hold a tenth of its items each, 5 of a
50-item list, too few to decide between two recipes (and val chose the kept model and its mixture's weights).
Here each list is a sample of a ladder source (own_lists.py), and besides val and test each run is scored on up
to 3,000 other items of the source: those not in the sample whose characters the run knows. The figure is their
mean loss per character (characters and end tokens), the same units as val.

    MAKEMORE_DATA=../shared/data python benchmarks/held_out.py --sources names,english-words --size 50
        [--samples 1,2] [--recipes 'default;best;networks=24;CONFIG.toml'] [--threads 1] [--out rows.jsonl]

A recipe is `default`, a preset's name, a TOML file (a run or ensemble recipe), or the default with settings
over it (`networks=24`, `n_hidden=256,dropout=0.3`). Sample s is the source's first `size` items after
random.Random(s) shuffles them, so every recipe trains on the same list and is scored on the same other items.
"""

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

import makemore
from own_lists import SOURCES, items_of

HELD_OUT = 3000


def sample(source: str, size: int, seed: int) -> tuple[list[str], list[str]]:
    """The list of a sample, and the source's other items."""
    items = list(dict.fromkeys(items_of(source)))
    random.Random(seed).shuffle(items)
    return items[:size], items[size:]


def recipe_kind(recipe: str) -> dict:
    if recipe.endswith(".toml"):
        return dict(config=recipe)
    if "=" in recipe:
        settings = dict(pair.split("=") for pair in recipe.split(","))
        return {k: json.loads(v) for k, v in settings.items()}
    return {} if recipe == "default" else dict(preset=recipe)


def held_out_loss(run, others: list[str]) -> tuple[float, int]:
    known = [w for w in others if all(ch in run.vocab.stoi for ch in w)][:HELD_OUT]
    logprob = sum(s.logprob for s in run.score(known))
    return -logprob / sum(len(w) + 1 for w in known), len(known)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", default=",".join(SOURCES[:6]))
    parser.add_argument("--size", type=int, default=50)
    parser.add_argument("--samples", default="1,2")
    parser.add_argument("--recipes", default="default", help="recipes separated by ';'")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, help="append each row to this JSON-lines file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for source in args.sources.split(","):
        for seed in map(int, args.samples.split(",")):
            items, others = sample(source, args.size, seed)
            for recipe in args.recipes.split(";"):
                with tempfile.TemporaryDirectory(prefix="makemore-held-out-") as tmp:
                    data = Path(tmp) / f"{source}-{args.size}-{seed}.txt"
                    data.write_text("\n".join(items) + "\n", encoding="utf-8")
                    cpu = time.process_time()
                    run = makemore.train(data, out=Path(tmp) / "run", verbose=False, device="cpu",
                                         **recipe_kind(recipe))
                    cpu = time.process_time() - cpu
                    loss, scored = held_out_loss(run, others)
                    row = dict(source=source, size=args.size, sample=seed, recipe=recipe, val=run.evaluate("val"),
                               test=run.evaluate("test"), held_out=loss, held_out_items=scored, cpu=cpu)
                print(json.dumps(row), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
