"""makemore: character-level models that make more of what you give them.

    import makemore
    run = makemore.train("my_list.txt", preset="fast", out="runs/mine")   # or model=..., **settings
    run = makemore.load("runs/mine")
    run.generate(20, temperature=0.8, prefix="ma")                        # a list of names
    run.evaluate("val")                                                   # the mean loss per character

train(), load() and ensemble() (several runs as one) give a Run; resolve() checks what train() would do.
MODELS are the model families, presets() the shipped recipes. A bad argument raises ConfigError, which names the setting.
"""

from makemore.api import ensemble, load, resolve, train
from makemore.config import TrainConfig, presets
from makemore.errors import ConfigError, UserError
from makemore.models import MODELS
from makemore.run import Run

__version__ = "0.1.0"
__all__ = ["train", "load", "ensemble", "resolve", "Run", "TrainConfig", "presets", "MODELS", "ConfigError", "UserError"]
