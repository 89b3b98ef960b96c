"""The model registry: a plain name -> (config class, model class) table."""

from __future__ import annotations

import dataclasses
import itertools

from makemore.errors import UserError
from makemore.models.bigram import Bigram, BigramConfig
from makemore.models.hierarchical import Hierarchical, HierarchicalConfig
from makemore.models.mlp import MLP, MLPConfig
from makemore.models.rnn import GRUConfig, LSTMConfig, Recurrent, RNNConfig
from makemore.models.transformer import Transformer, TransformerConfig
from makemore.models.wavenet import ConvTree, ConvTreeConfig, WaveNet, WaveNetConfig

MODELS = {
    "bigram": (BigramConfig, Bigram),
    "mlp": (MLPConfig, MLP),
    "hierarchical": (HierarchicalConfig, Hierarchical),
    "conv": (ConvTreeConfig, ConvTree),
    "wavenet": (WaveNetConfig, WaveNet),
    "rnn": (RNNConfig, Recurrent),
    "gru": (GRUConfig, Recurrent),
    "lstm": (LSTMConfig, Recurrent),
    "transformer": (TransformerConfig, Transformer),
}


def lookup(name: str):
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
    return MODELS[name]


def config_fields(name: str) -> list[str]:
    return [f.name for f in dataclasses.fields(lookup(name)[0])]


def make_config(name: str, **options):
    """The model's config with the given options; an option the model does not have is an error."""
    config_cls, _ = lookup(name)
    valid = config_fields(name)
    for key in options:
        if key not in valid:
            raise UserError(f"model {name!r} has no option {key!r}; its options: {', '.join(valid)}")
    return config_cls(**options)


def build(name: str, config, generator=None):
    _, model_cls = lookup(name)
    return model_cls(config, generator=generator)


def num_params(model) -> int:
    return getattr(model, "num_params", None) or sum(p.numel() for p in model.parameters())


def device_of(model):
    return next(itertools.chain(model.parameters(), model.buffers())).device
