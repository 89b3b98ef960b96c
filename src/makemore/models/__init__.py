"""The model registry: a plain name -> (config class, model class) table, and the options a user may set."""

from __future__ import annotations

import dataclasses
import itertools

from makemore.errors import ConfigError
from makemore.fields import Field
from makemore.models.bigram import Bigram, BigramConfig
from makemore.models.ensemble import Ensemble, EnsembleConfig
from makemore.models.hierarchical import Hierarchical, HierarchicalConfig
from makemore.models.interpolated import Interpolated, with_ngram
from makemore.models.mlp import MLP, MLPConfig
from makemore.models.ngram import MAX_CONTEXT, NGram, NGramConfig
from makemore.models.rnn import GRUConfig, LSTMConfig, Recurrent, RNNConfig
from makemore.models.transformer import Transformer, TransformerConfig
from makemore.models.wavenet import NORMS, ConvTree, ConvTreeConfig, WaveNet, WaveNetConfig

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
    "ngram": (NGramConfig, NGram),
}
# A network and an n-gram as one model, their distributions mixed: the default recipe's. Any sequence family can be
# the network (with_ngram); the registry holds the one the default uses.
MODELS["gru+ngram"] = (with_ngram("gru", *MODELS["gru"]), Interpolated)
COMBINED = {  # made from trained runs (makemore ensemble), not trained: a checkpoint may hold one
    "ensemble": (EnsembleConfig, Ensemble),
}

# The options of the models' configs that a user sets; a model takes those its config has. The others
# (vocab_size, n_classes, cell) come from the data or the model's name.
OPTIONS = {
    "block_size": Field(int, "characters of context; 0: the longest item + 1 (whole-word models)", low=0,
                        low_inclusive=True, high=4096, high_inclusive=True, flag="context"),
    "n_embd": Field(int, "embedding size", low=0, high=8192, high_inclusive=True),
    "n_hidden": Field(int, "hidden size", low=0, high=8192, high_inclusive=True),
    "smoothing": Field(float, "bigram: add-k smoothing", low=0, low_inclusive=True),
    "discount": Field(float, "ngram, <family>+ngram: the Kneser-Ney discount (<family>+ngram: 0 chooses 0.75 or 0.9 on "
                             "val)", low=0, low_inclusive=True, high=1, high_inclusive=True),
    "ngram_context": Field(int, "<family>+ngram: the n-gram's characters of context (0: chosen on val)", low=0,
                           low_inclusive=True, high=MAX_CONTEXT, high_inclusive=True),
    "networks": Field(int, "<family>+ngram: networks trained side by side, each kept at its best val, mixed (auto: as "
                           "many as a small list's time holds)", low=0, high=64, high_inclusive=True),
    "n_skip": Field(int, "wavenet: skip channels", low=0, high=8192, high_inclusive=True),
    "n_stacks": Field(int, "wavenet: stacks of dilations 1 .. 2**k", low=0, high=16, high_inclusive=True),
    "kernel_size": Field(int, "wavenet: convolution kernel", low=0, high=64, high_inclusive=True),
    "norm": Field(str, "wavenet: normalisation in each layer", choices=NORMS),
    "dropout": Field(float, "wavenet, rnn, gru, lstm, transformer: dropout", low=0, low_inclusive=True, high=1),
    "emb_dropout": Field(float, "rnn, gru, lstm: dropout on the embedded characters", low=0, low_inclusive=True,
                         high=1),
    "weight_drop": Field(float, "rnn, gru, lstm: drop this share of the hidden-to-hidden weights, one mask a batch "
                                "(weight-drop)", low=0, low_inclusive=True, high=1),
    "n_layers": Field(int, "rnn, gru, lstm, transformer: layers", low=0, high=64, high_inclusive=True),
    "n_head": Field(int, "transformer: attention heads", low=0, high=64, high_inclusive=True),
}


def lookup(name: str):
    if name in COMBINED:
        return COMBINED[name]
    if name not in MODELS:
        raise ConfigError("model", f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
    return MODELS[name]


def config_fields(name: str) -> list[str]:
    return [f.name for f in dataclasses.fields(lookup(name)[0])]


def conditioned(name: str) -> bool:
    """Whether the model can be conditioned on a class (its config has n_classes), which a network + n-gram cannot
    be: its n-gram is not."""
    return "n_classes" in config_fields(name) and lookup(name)[1] is not Interpolated


def options_of(name: str) -> list[str]:
    """The options a user may set for this model."""
    return [f for f in config_fields(name) if f in OPTIONS]


def check_option(name: str, key: str, value):
    """A user's option for model `name`: one its config has, of the right type and bounds."""
    if key not in options_of(name):
        raise ConfigError(key, f"model {name!r} has no such option; its options: {', '.join(options_of(name))}")
    return OPTIONS[key].check(key, value)


def make_config(name: str, **options):
    """The model's config with the given options (the user's, and vocab_size, n_classes from the data)."""
    config_cls, _ = lookup(name)
    for key, value in options.items():
        if key in OPTIONS or key not in config_fields(name):
            options[key] = check_option(name, key, value)
    return config_cls(**options)


def build(name: str, config, generator=None):
    _, model_cls = lookup(name)
    if model_cls is Ensemble:  # its members first, each from its own config
        return Ensemble(config, [build(m["model"], make_config(m["model"], **m["config"])) for m in config.members])
    return model_cls(config, generator=generator)


def num_params(model) -> int:
    return getattr(model, "num_params", None) or sum(p.numel() for p in model.parameters())


def device_of(model):
    return next(itertools.chain(model.parameters(), model.buffers())).device
