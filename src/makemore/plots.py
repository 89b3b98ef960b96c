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
