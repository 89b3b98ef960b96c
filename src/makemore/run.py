"""A trained run, as its folder holds it, loaded for use: generate, evaluate, score, serve."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from makemore import checkpoint, models
from makemore.config import TrainConfig, resolve_device
from makemore.data import Corpus, examples
from makemore.distance import NearIndex
from makemore.draw import SECONDS, Drawn, Sampler, default_max_len, draw
from makemore.errors import ConfigError, UserError
from makemore.export import export_onnx, export_web
from makemore.lists import composed, read_items
from makemore.runfolder import CHECKPOINT, SUMMARY
from makemore.sample import SAMPLING, Options
from makemore.score import Score, next_char_probs, score
from makemore.style import Style
from makemore.train import evaluate


@dataclass
class Run:
    """A trained model as its run folder holds it: enough to generate, evaluate and serve with nothing else.

        run = makemore.load("runs/names")
        run.generate(20, temperature=0.8, prefix="ma")
        run.evaluate("val")
    """

    folder: Path
    model_name: str
    model: torch.nn.Module
    corpus: Corpus
    train_config: TrainConfig
    state: dict = field(repr=False)  # the checkpoint's contents
    summary: dict = field(default_factory=dict, repr=False)  # summary.json's: its losses (test too), steps, time

    @property
    def vocab(self):
        return self.corpus.vocab

    @property
    def classes(self) -> list[str]:
        """The classes a conditioned model generates in (the data files' names); [] for others."""
        return self.corpus.classes or []

    def known(self, cls: str | None = None) -> frozenset[str]:
        """The training items (of one class): what a generated name is compared with for novelty."""
        return self.corpus.items_of(self.corpus.class_index(cls))

    def examples(self, split: str):
        return examples(self.model, self.corpus, split)

    def evaluate(self, split: str = "val") -> float:
        """The mean loss per character (end tokens included) over a whole split: train, val or test."""
        if split not in ("train", "val", "test"):
            raise ConfigError("split", f"expected one of train, val, test, got {split!r}")
        data = tuple(t.to(models.device_of(self.model)) for t in self.examples(split))
        return evaluate(self.model, data)

    def sampler(self, n: int = 10, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                prefix: str = "", seed: int | None = None, cls: str | None = None, min_len: int = 1,
                max_len: int | None = None, novel_only: bool = False, exclude=(), unique: bool = False,
                seconds: float = SECONDS, logprobs: bool = False, on_names=None, pattern: str | None = None,
                ends_with: str = "", contains=(), min_distance: int = 0, list_style: bool = True) -> Sampler:
        """A request for n names, checked, ready to be drawn alone (draw) or batched with others (the server).
        on_names: a function given each round's names as they are found, which are then not kept."""
        SAMPLING["n"].check("n", n)
        SAMPLING["seconds"].check("seconds", seconds)
        SAMPLING["min_distance"].check("min_distance", min_distance)
        index = self.corpus.class_index(cls)
        contains = (contains,) if isinstance(contains, str) else tuple(contains)
        options = Options(temperature, top_k, top_p, prefix, index, min_len,
                          default_max_len(self.corpus.longest, prefix) if max_len is None else max_len,
                          pattern, ends_with, contains).check(self.vocab)
        generator = torch.Generator(device=models.device_of(self.model))
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(SAMPLING["seed"].check("seed", seed))
        if isinstance(exclude, (str, Path)):  # a file of names, one per line
            exclude = read_items(exclude)
        exclude = [composed(w) if isinstance(w, str) else w for w in exclude]  # as the list's items are
        far = None
        if min_distance > 1:  # at least min_distance edits from the list and from the excluded names
            near = [self.near_index(index, min_distance - 1), NearIndex(exclude, min_distance - 1)]
            far = lambda word: not any(i.near(word) for i in near)  # noqa: E731
        if not isinstance(list_style, bool):
            raise ConfigError("list_style", f"expected true or false, got {list_style!r}")
        style = self.style(index) if list_style else None
        return Sampler(n, options, generator, self.corpus.items_of(index), novel_only, frozenset(exclude), unique,
                       seconds=seconds, logprobs=logprobs, on_names=on_names, far=far,
                       style=None if style is None else style.fits)

    def export(self, out, format: str = "onnx") -> Path:
        """The run outside Python, in the folder out (new). format "onnx": its step model as ONNX and its
        vocabulary, sampling defaults and n-gram as JSON, with a README of the inputs and outputs; "web": a static
        page that generates and scores in the browser with no server (makemore.export)."""
        settings = dict(max_len=default_max_len(self.corpus.longest), val=self.summary.get("val_loss"),
                        style=self.style(None))
        if format == "onnx":
            return export_onnx(self.model, self.model_name, self.vocab, self.folder, out, **settings)
        if format == "web":
            return export_web(self.model, self.model_name, self.vocab, self.known(), self.folder, out, **settings)
        raise ConfigError("format", f"expected onnx or web, got {format!r}")

    def near_index(self, cls: int | None, radius: int) -> NearIndex:
        """The index of the list's items (of one class) at an edit radius, made once."""
        made = self.__dict__.setdefault("_near", {})
        if (cls, radius) not in made:
            made[cls, radius] = NearIndex(self.corpus.items_of(cls), radius)
        return made[cls, radius]

    def style(self, cls: int | None) -> Style | None:
        """How the list's items (of one class) are written (style.Style), learned once; None where that forbids
        nothing."""
        made = self.__dict__.setdefault("_style", {})
        if cls not in made:
            made[cls] = Style.of(self.corpus.items_of(cls))
        return made[cls]

    def draw(self, n: int = 10, **options) -> Drawn:
        """n names and every name drawn on the way, for the novelty rate: generate() with the details — whether
        all n were found (complete), and how many rounds it took."""
        return draw(self.model, self.vocab, self.sampler(n, **options))

    def generate(self, n: int = 10, **options) -> list[str]:
        """n names. Options: temperature; top_k (the k likeliest characters) and top_p (nucleus: the likeliest
        that make up this share of the probability); prefix (every name starts with it); seed (repeatable
        output); cls (a conditioned model's class); min_len, max_len (in characters, prefix included: a name that
        would be longer is drawn again, not cut; by default at least 1 and at most twice the longest item, never
        over 1,000); novel_only (none of
        the training items); exclude (names never to give: a list, or a file with one per line); unique (each
        name once); seconds (how long to keep drawing again when filters leave out names, 5 by default: an impossible
        request gives what was found, fewer than n); pattern (a regular expression the whole name matches),
        ends_with, contains (a string or several), min_distance (edits from every item and excluded name);
        list_style (True by default: names written as the list writes its items, style.py)."""
        return self.draw(n, **options).names

    def score(self, words, cls: str | None = None) -> list[Score]:
        """How likely each word is under the model: its log-probability (characters and end), the mean per
        character, and each character's surprisal."""
        return score(self.model, self.vocab, words, cls=self.corpus.class_index(cls))

    def next_char_probs(self, prefix: str = "", cls: str | None = None) -> list[float]:
        """The distribution of the character after prefix (index = token; 0 is the end of the name)."""
        return next_char_probs(self.model, self.vocab, prefix, cls=self.corpus.class_index(cls))


def load_run(folder, device: str = "cpu", weights: str = "best") -> Run:
    """A run folder's run, with the weights of its best evaluation (the lowest val loss), or with weights="last"
    those it stopped with, to go on from."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder")
    path = folder / CHECKPOINT
    if not path.is_file():
        raise UserError(f"{folder}: not a run folder (it has no {CHECKPOINT})")
    state = checkpoint.read(path)
    try:
        name = state["model_name"]
        config = models.make_config(name, **state["model_config"])
        model = models.build(name, config)
        best = state.get("best") or {}
        model.load_state_dict(best["model"] if weights == "best" and best.get("model") is not None else state["model"])
        train_cfg = TrainConfig(**state["train_config"])
        corpus = Corpus.from_state(state["corpus"])
    except (KeyError, TypeError, ValueError, RuntimeError, UserError) as e:
        raise UserError(f"{path}: checkpoint does not match this makemore "
                        f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if weights == "best" and not all(v.isfinite().all() for v in model.state_dict().values() if v.is_floating_point()):
        raise UserError(f"{path}: its weights are not finite numbers (the training diverged); train again")
    try:
        summary = json.loads((folder / SUMMARY).read_text())
    except (OSError, ValueError):
        summary = {}  # killed before its first evaluation, or a damaged file: the checkpoint is what counts
    model.to(resolve_device(device)).eval()
    return Run(folder, name, model, corpus, train_cfg, state, summary)
