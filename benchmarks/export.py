"""Exports: their size, and the page's speed in chromium.

    python benchmarks/export.py RUN [--names 1000]     the run's ONNX and web exports: sizes; the page, opened from
                                                       the disk in chromium: load time, names/s, and the largest
                                                       difference of its scores from `makemore score` (200 words)
    python benchmarks/export.py --families [--data names]
                                                       each exportable family's exports, as `makemore train DATA
                                                       --model F` builds it (trained 1 step: the size does not
                                                       depend on training)

Names/s is for the page's defaults (temperature 1, no filter), one name at a time on the page's thread.
"""

import argparse
import tempfile
import time
from pathlib import Path

import makemore
from makemore.export import EXPORTABLE, RECURRENT

CHROMIUM = "/usr/bin/chromium"


def size(folder: Path) -> str:
    return f"{sum(p.stat().st_size for p in folder.iterdir()) / 1e6:.2f} MB"


def page_figures(run, folder: Path, n: int):
    from playwright.sync_api import sync_playwright

    words = sorted(run.known())[::max(1, len(run.known()) // 200)][:200]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        started = time.perf_counter()
        page.goto((folder / "index.html").as_uri())
        page.wait_for_function("typeof model !== 'undefined' && model !== null")
        loaded = time.perf_counter() - started
        got = page.evaluate("(words) => words.map((w) => model.score(w).logprob)", words)
        seconds = page.evaluate("(n) => { const t = performance.now(); model.generate(n, {}, makemore.seeded(1), 600);"
                                " return (performance.now() - t) / 1000; }", n)
        browser.close()
    worst = max(abs(a - b.logprob) for a, b in zip(got, run.score(words)))
    print(f"page: loaded in {loaded:.2f} s; {n / seconds:,.0f} names/s ({n:,} in {seconds:.2f} s); "
          f"scores of {len(words)} words within {worst:.1e} of makemore score")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?")
    parser.add_argument("--names", type=int, default=1000)
    parser.add_argument("--families", action="store_true")
    parser.add_argument("--data", default="names")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.families:
            print("| family | params | ONNX export | web export |\n|---|---|---|---|")
            for family in EXPORTABLE:
                run = makemore.train(args.data, model=family, out=scratch / family, steps=1, eval_every=1,
                                     verbose=False)
                onnx = size(run.export(scratch / f"{family}-onnx"))
                web = size(run.export(scratch / f"{family}-web", format="web")) if family in (*RECURRENT, "gru+ngram") \
                    else ""
                print(f"| {family} | {run.summary['params']:,} | {onnx} | {web} |", flush=True)
            return
        run = makemore.load(args.run)
        print(f"{args.run}: {run.model_name}, {run.summary['params']:,} params")
        print(f"ONNX export: {size(run.export(scratch / 'onnx'))}")
        web = run.export(scratch / "web", format="web")
        print(f"web export: {size(web)} (" + ", ".join(f"{p.name} {p.stat().st_size / 1e3:,.0f} kB"
                                                       for p in sorted(web.iterdir())) + ")")
        page_figures(run, web, args.names)


if __name__ == "__main__":
    main()
