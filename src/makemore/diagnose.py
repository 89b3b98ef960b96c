"""The lecture's part-3 diagnostics for any model: forward and backward hooks on a few training batches give
per-layer activation and gradient statistics; the update:data ratio comes from a run trained with --track-stats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from makemore import models, scratch
from makemore.callbacks import UpdateRatios
from makemore.data import IGNORE
from makemore.run import Run
from makemore.train import Batches

ACTIVATIONS = (scratch.Tanh, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ReLU, nn.RNNBase)
TANH_LIKE = (scratch.Tanh, nn.Tanh, nn.RNNBase)  # outputs in [-1, 1], where |x| > 0.97 is saturation
SATURATED = 0.97


@dataclass
class Layer:
    name: str
    kind: str
    tanh_like: bool
    outputs: list = field(default_factory=list)  # the output values over the batches, padding left out
    grads: list = field(default_factory=list)  # d loss / d output at the same places


def watched_layers(model) -> list[tuple[str, nn.Module]]:
    """The nonlinearities, as the lecture watches its Tanh layers; a model with none (the bigram) shows its
    leaf modules, or its own output."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, ACTIVATIONS)]
    if found:
        return found
    leaves = [(n, m) for n, m in model.named_modules() if n and not any(m.children())]
    return leaves or [("model", model)]


def collect(model, batches) -> tuple[list[Layer], dict]:
    """Runs each batch forward and backward in training mode (batch statistics, as the model trains) and
    returns the watched layers' outputs and output gradients, and each weight matrix's gradient."""
    layers, handles = [], []
    state = {}  # the current batch's target mask, for sequence models: outputs past a word's end are padding

    def keep(layer, out):
        if isinstance(out, tuple):  # RNN / GRU / LSTM: (output, state)
            out = out[0]
        if isinstance(out, PackedSequence):  # a recurrent model's rows packed in training: real positions only
            out = out.data
        mask = state.get("mask")

        def real(t):  # the values at real positions, flattened
            if mask is not None and t.ndim == 3:
                return t[:, -mask.shape[1]:][mask].float().flatten().cpu()  # conv tree levels: align on the right
            return t.float().flatten().cpu()

        layer.outputs.append(real(out.detach()))
        if out.requires_grad:  # the backward hook: d loss / d output, at the same places
            out.register_hook(lambda g: layer.grads.append(real(g.detach())))

    for name, module in watched_layers(model):
        layer = Layer(name, type(module).__name__, isinstance(module, TANH_LIKE))
        layers.append(layer)
        handles.append(module.register_forward_hook(lambda m, args, out, layer=layer: keep(layer, out)))
    weights = {n: p for n, p in model.named_parameters() if p.ndim >= 2}
    grads = {n: [] for n in weights}
    was_training = model.training
    model.train()
    try:
        for batch in batches:
            X, Y = batch[:2]
            state["mask"] = (Y != IGNORE) if Y.ndim == 2 else None
            model.zero_grad(set_to_none=True)
            _, loss = model(*batch)
            if loss.requires_grad:
                loss.backward()
            for n, p in weights.items():
                if p.grad is not None:
                    grads[n].append(p.grad.detach().float().flatten().cpu())
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    weight_stats = {n: {"grad": torch.cat(g), "data": weights[n].detach().float().flatten().cpu()}
                    for n, g in grads.items() if g}
    return layers, weight_stats


def summarize(layers: list[Layer], weight_stats: dict) -> dict:
    rows = []
    for layer in layers:
        out = torch.cat(layer.outputs)
        grad = torch.cat(layer.grads) if layer.grads else None
        rows.append({
            "layer": layer.name, "kind": layer.kind, "mean": out.mean().item(), "std": out.std().item(),
            "saturated": (out.abs() > SATURATED).float().mean().item() if layer.tanh_like else None,
            "grad_mean": grad.mean().item() if grad is not None else None,
            "grad_std": grad.std().item() if grad is not None else None,
        })
    weights = [{"weight": n, "grad_std": s["grad"].std().item(),
                "grad_to_data": (s["grad"].std() / s["data"].std()).item()} for n, s in weight_stats.items()]
    return {"layers": rows, "weights": weights}


def read_update_ratios(folder: Path) -> list[dict]:
    path = Path(folder) / UpdateRatios.FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@dataclass
class Diagnosis:
    stats: dict  # summarize()'s rows: "layers" and "weights"
    written: list[str]  # the figures, in the folder
    folder: Path
    has_update_ratios: bool


def diagnose(run: Run, batches: int = 4, batch_size: int | None = None, init: bool = False, out=None) -> Diagnosis:
    """The figures of a run's layers over a few training batches, drawn as its trainer draws them:
    activations.png, gradients.png, and update_ratio.png for a run trained with track_stats, in out (default
    RUN/diagnose). With init, the run's model as its run first built it, before training."""
    from makemore.plots import activation_histograms, gradient_histograms, update_ratio_plot

    model, seed = run.model, run.train_config.seed
    if init:  # the same model as its run first built it
        model = models.build(run.model_name, models.make_config(run.model_name, **run.state["model_config"]),
                             generator=torch.Generator().manual_seed(seed))
    sampler = Batches(run.examples("train"), batch_size or run.train_config.batch_size,
                      torch.Generator().manual_seed(seed), torch.device("cpu"))
    layers, weight_stats = collect(model, [sampler.take(sampler.indices()) for _ in range(batches)])
    stats = summarize(layers, weight_stats)
    out = Path(out) if out is not None else run.folder / "diagnose"
    out.mkdir(parents=True, exist_ok=True)
    title = f"({run.model_name}, {'at init' if init else 'trained'})"
    activation_histograms(layers, stats["layers"], out / "activations.png", title)
    gradient_histograms(layers, stats["layers"], weight_stats, stats["weights"], out / "gradients.png", title)
    written = ["activations.png", "gradients.png"]
    records = read_update_ratios(run.folder)
    if records:
        update_ratio_plot(records, out / "update_ratio.png", f"({run.model_name})")
        written.append("update_ratio.png")
    return Diagnosis(stats, written, out, bool(records))
