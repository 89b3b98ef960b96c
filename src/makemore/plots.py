"""Figures, drawn headless and written atomically."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

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
