"""Issue "generation 2": names of a shape and far from the list, on a run of names (the default recipe's).

    MAKEMORE_DATA=../shared/data python benchmarks/constraints.py RUN [--repeat 3]

Prints, each the best of --repeat: plain sampling's names/s (the anchor), --ends-with a's names/s, the seconds
100 names of rare patterns take (with the path taken and, where guided, the pattern's probability under the
model as its importance weights estimate it), and --min-distance 2's names/s against names.txt.
"""

import argparse
import time

import makemore

PATTERNS = ["x[aeiou]x[aeiou]x", "[a-z]*q[a-z]*z", "kw[a-z]*", "[a-z]*yyy[a-z]*"]


def timed(run, n, repeat, **options):
    best = None
    for seed in range(repeat):
        start = time.perf_counter()
        drawn = run.draw(n, seed=seed, **options)
        seconds = time.perf_counter() - start
        if best is None or seconds < best[0]:
            best = (seconds, drawn)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    run = makemore.load(args.run)
    run.generate(100, seed=0)  # warm up
    seconds, drawn = timed(run, 20_000, args.repeat)
    print(f"plain sampling: {len(drawn.names) / seconds:,.0f} names/s (20,000 names)")
    seconds, drawn = timed(run, 20_000, args.repeat, ends_with="a")
    g = drawn.guidance
    print(f"--ends-with a: {len(drawn.names) / seconds:,.0f} names/s (20,000 names; {g['mode']}, "
          f"{100 * g['acceptance']:.1f}% of draws matched)")
    for pattern in PATTERNS:
        seconds, drawn = timed(run, 100, args.repeat, pattern=pattern)
        g = drawn.guidance
        how = f"{g['mode']}, {100 * g['acceptance']:.3f}% of draws matched" if g["mode"] == "exact" else (
            f"guided after {g['found']} of {g['tried']:,} draws matched; {g['candidates']:,} candidates, "
            f"{g['effective']:,.0f} effective; " + ("too few to estimate its probability" if g["probability"] is None
                                                    else f"probability about {g['probability']:.1e}"))
        print(f"--pattern {pattern!r}: {len(drawn.names)} names in {seconds:.2f} s, {len(set(drawn.names))} distinct "
              f"({how})")
    run.sampler(1, min_distance=2)  # the index of names.txt, made once
    seconds, drawn = timed(run, 5_000, args.repeat, min_distance=2)
    print(f"--min-distance 2: {len(drawn.names) / seconds:,.0f} names/s (5,000 names, {drawn.tried:,} drawn)")


if __name__ == "__main__":
    main()
