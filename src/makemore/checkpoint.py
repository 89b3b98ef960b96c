"""The checkpoint, a run folder's model.pt: its format, writing one, and reading one back, with a one-line error
for anything that is not one this makemore reads.

A checkpoint holds everything a run folder needs: to sample and evaluate (the model's name, config and weights,
the corpus: its items, vocabulary and classes), and to go on exactly (the training settings, and the training
loop's state: loop.Loop.state_dict)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import torch

from makemore.data import Corpus
from makemore.errors import UserError
from makemore.files import write_atomic

FORMAT = 1


def state(model_name: str, model, corpus: Corpus, train_cfg, loop: dict | None = None) -> dict:
    """A checkpoint's contents: the model's last weights, and the loop's state (none for a model that was not
    trained here, an ensemble's)."""
    loop = loop or {"optimizer": None, "step": 0, "generator": None, "torch_rng": torch.get_rng_state(),
                    "rank_rng_states": None, "elapsed": 0.0, "best": None, "averaged": None, "stopped": None}
    return {"format": FORMAT, "model_name": model_name, "model_config": dataclasses.asdict(model.config),
            "corpus": corpus.state(), "train_config": dataclasses.asdict(train_cfg), "model": model.state_dict(),
            **loop}


def save(path: Path, contents: dict):
    buf = io.BytesIO()
    torch.save(contents, buf)
    write_atomic(path, buf.getvalue())


def read(path: Path) -> dict:
    """A checkpoint's contents, checked for its format."""
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file: truncated, not a zip, foreign pickle
        raise UserError(f"{path}: corrupt checkpoint ({type(e).__name__}); train again") from None
    if not isinstance(contents, dict) or "format" not in contents:
        raise UserError(f"{path}: not a makemore checkpoint")
    if contents["format"] != FORMAT:
        raise UserError(f"{path}: checkpoint format {contents['format']} is not the one this makemore reads "
                        f"({FORMAT}); train again")
    return contents
