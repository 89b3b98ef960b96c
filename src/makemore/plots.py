"""Figures, drawn headless and written atomically."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from makemore.files import write_atomic  # noqa: E402


def save_figure(fig, path: Path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def loss_curve(metrics: list[dict], path: Path, title: str = ""):
    """The lecture's plot: log10 of the batch loss averaged over each log interval (1000 steps), with val points."""
    logs = [m for m in metrics if "log10_loss" in m]
    evals = [m for m in metrics if "val_loss" in m]
    fig, ax = plt.subplots(figsize=(7, 4))
    if logs:
        ax.plot([m["step"] for m in logs], [m["log10_loss"] for m in logs], label="train batches (mean log10 loss)")
    if evals:
        ax.plot([m["step"] for m in evals], [math.log10(m["val_loss"]) for m in evals], "o-", label="val (whole split)")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def compare_runs(runs: dict, path: Path):
    """One figure of several runs: train (whole split) dashed and val solid, per evaluation step.
    runs maps a label to that run's metrics records."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, (label, metrics) in enumerate(runs.items()):
        evals = [m for m in metrics if "val_loss" in m]
        steps = [m["step"] for m in evals]
        color = f"C{k % 10}"
        ax.plot(steps, [m["train_loss"] for m in evals], "--", color=color, alpha=0.7, label=f"{label} train")
        ax.plot(steps, [m["val_loss"] for m in evals], "o-", color=color, ms=3, label=f"{label} val")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (whole split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def sweep_history(trials: list, path: Path, title: str = ""):
    """A sweep's history: each finished trial's val loss by trial number (pruned ones at their last report),
    and the best so far."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for state, marker in (("complete", "o"), ("pruned", "x")):
        points = [(n, v) for n, v, s in trials if s == state]
        if points:
            ax.plot(*zip(*points), marker, ls="", alpha=0.8, label=state)
    complete = sorted((n, v) for n, v, s in trials if s == "complete")
    if complete:
        best, steps = math.inf, []
        for n, v in complete:
            best = min(best, v)
            steps.append((n, best))
        ax.step(*zip(*steps), where="post", color="k", lw=1, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("val loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def histogram_lines(ax, series: list, title: str, xlabel: str, bins: int = 60):
    """The lecture's histograms: one line per layer, density against value, the legend carrying each
    layer's figures."""
    for label, values in series:
        values = values.float()
        low, high = values.min().item(), values.max().item()
        if high <= low:
            low, high = low - 1e-8, high + 1e-8
        counts = values.histc(bins, low, high)
        centers = torch.linspace(low, high, bins + 1)
        centers = (centers[:-1] + centers[1:]) / 2
        ax.plot(centers.numpy(), (counts / counts.sum().clamp_min(1) * bins / (high - low)).numpy(), label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def activation_histograms(layers: list, rows: list, path: Path, title: str = ""):
    fig, ax = plt.subplots(figsize=(9, 4.5))
    series = []
    for layer, row in zip(layers, rows):
        sat = f", saturated {100 * row['saturated']:.1f}%" if row["saturated"] is not None else ""
        series.append((f"{layer.name} ({layer.kind}): mean {row['mean']:+.2f}, std {row['std']:.2f}{sat}",
                       torch.cat(layer.outputs)))
    histogram_lines(ax, series, f"activation distribution {title}".strip(), "output value")
    save_figure(fig, path)


def gradient_histograms(layers: list, rows: list, weight_stats: dict, weight_rows: list, path: Path, title: str = ""):
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8))
    series = [(f"{layer.name}: mean {row['grad_mean']:+.2e}, std {row['grad_std']:.2e}", torch.cat(layer.grads))
              for layer, row in zip(layers, rows) if layer.grads]
    if series:
        histogram_lines(top, series, f"gradient of the loss at each layer's output {title}".strip(), "gradient")
    else:
        top.set_title("no gradients: the model has no trained parameters")
    series = [(f"{row['weight']}: grad:data {row['grad_to_data']:.2e}", weight_stats[row["weight"]]["grad"])
              for row in weight_rows]
    if series:
        histogram_lines(bottom, series, "weight gradient distribution", "gradient")
    save_figure(fig, path)


def update_ratio_plot(records: list, path: Path, title: str = ""):
    """The lecture's update:data ratio, log10(std(update) / std(weight)) per weight over the steps, with the
    1e-3 guide: far below it the weights barely move; far above, they thrash."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    steps = [r["step"] for r in records]
    for name in records[0]["update_ratio"]:
        ax.plot(steps, [r["update_ratio"][name] for r in records], lw=1, label=name)
    ax.axhline(-3, color="k", ls="--", lw=1, label="1e-3 guide")
    ax.set_xlabel("step")
    ax.set_ylabel("log10(update std / weight std)")
    ax.set_title(f"update:data ratio {title}".strip())
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
