"""makemore: character-level models that make more of what you give them.

    import makemore
    run = makemore.train("my_list.txt", out="runs/mine")     # the default recipe; or preset=, model=, **settings
    run = makemore.load("runs/mine")
    run.generate(20, temperature=0.8, prefix="ma")          # a list of names
    run.evaluate("val")                                     # the mean loss per character

resolve() says what train() would train (a RunSpec, which train() and start() take); start() makes the run
folder and gives a Training to run; train() does both and gives the trained Run; resume() goes on from a run
folder; load() reads one; ensemble() mixes Runs. Run.draw() gives a Drawn, Run.score() Scores. MODELS are the
model families, presets() the shipped recipes. A bad argument raises ConfigError, which names the setting.
"""

from makemore.api import ensemble, load, resolve, resume, start, train
from makemore.config import RunSpec, TrainConfig, presets
from makemore.draw import Drawn
from makemore.errors import ConfigError, UserError
from makemore.models import MODELS
from makemore.run import Run
from makemore.score import Score
from makemore.training import EnsembleTraining, Training

__version__ = "0.1.0"
__all__ = ["train", "start", "resume", "load", "ensemble", "resolve", "Run", "RunSpec", "Training",
           "EnsembleTraining", "Drawn", "Score", "TrainConfig", "presets", "MODELS", "ConfigError", "UserError"]
