"""An optional JAX backend: the lecture's `hierarchical` model and its conv form (`conv`) in Flax NNX, trained
with optax under jax.jit. `pip install makemore[jax]` brings jax, flax and optax.

Flax NNX rather than Linen: NNX modules hold their parameters and BatchNorm statistics as attributes, as
torch modules do, so each PyTorch layer has a line-for-line twin, and weights convert by name in both
directions (a JAX state path ('net', 'layers', 2, 'weight') is the torch key 'net.layers.2.weight').
"""

from makemore.errors import ConfigError

MODELS = ("hierarchical", "conv")


def require():
    """Import jax, flax and optax, or say in one line how to install them."""
    import importlib

    try:
        for module in ("jax", "flax", "optax"):
            importlib.import_module(module)
    except ImportError as e:
        raise ConfigError("backend", f"jax: {e.name} is not installed; pip install 'makemore[jax]' "
                                     "(or pip install jax flax optax)") from None
