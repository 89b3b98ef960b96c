"""A list as the models see it: the vocabulary, the lecture's split, training windows and whole sequences, and the
Corpus (a list's items, vocabulary, classes and split). Reading lists and data sets: lists.py."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from makemore.errors import ConfigError, UserError
from makemore.lists import MAX_PADDED, line_of_item, read_source, to_ascii

BOUNDARY = 0  # the start/end token; every character of the data gets an index >= 1
IGNORE = -1  # the target at padding positions of a sequence: no loss there (cross_entropy's ignore_index)
SPLIT_FRACTIONS = (0.8, 0.9)  # train = [:80%], val = [80%:90%], test = [90%:]
SPLIT_SEED = 42
SPLITS = ("train", "val", "test")


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

    @property
    def spaces(self) -> torch.Tensor:
        """(size,) bool: which tokens are whitespace (none can end an item: lists.read_items strips it)."""
        return torch.tensor([False] + [ch.isspace() for ch in self.chars])

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
    Y, _ = encode_rows(items, vocab, 0, length - 1)  # (N, length): ids, BOUNDARY, IGNORE...
    X = torch.full_like(Y, BOUNDARY)  # no IGNORE among the inputs: padding reads the boundary token
    X[:, 1:] = Y[:, :-1]
    return X.clamp_(min=BOUNDARY), Y  # two matrices of the list's size at most (a third, made and copied, was 1/3
    # of the peak memory of a large list's load)


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
    notes: list[str] = field(default_factory=list, repr=False, compare=False)  # said before training: a
    # list that reads as a table (table_note); not kept in a checkpoint

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
        check_padded(specs, lists)
        source = " + ".join(map(str, specs)) + (" (ascii)" if ascii else "")
        corpus = cls(source=source, items=items, vocab=Vocab.from_items(items))
        corpus.notes = [note for spec, lst in zip(specs, lists) if (note := table_note(spec, lst))]
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


SEPARATORS = {",": ("comma", "-d, "), "\t": ("tab", ""), ";": ("semicolon", "-d';' "), "|": ("bar", "-d'|' ")}


def table_note(spec, items) -> str | None:
    """A note where a list reads as a table: every item has as many separators (commas, tabs...), at least one,
    and one of its fields is a number in nine items of ten (a header allowed), as a file of baby names with their
    counts ("Olivia,F,17535"). makemore learns whole lines, the numbers too; the note says so and how to keep a
    field."""
    for sep, (name, flag) in SEPARATORS.items():
        k = items[0].count(sep) if items else 0
        if not k or any(w.count(sep) != k for w in items):
            continue
        fields = [w.split(sep) for w in items]
        for j in range(k + 1):
            if sum(f[j].strip().replace(".", "", 1).isdigit() for f in fields) >= 0.9 * len(items):
                return (f"note: every line of {spec} has {k} {name}{'s' * (k > 1)} and field {j + 1} is a number "
                        f"({items[-1]!r}): makemore learns whole lines, numbers too; to learn one field, keep it alone "
                        f"(cut {flag}-f1 {spec} > names.txt)")
    return None


def check_padded(specs, lists):
    """A one-line error where padding every item to the longest would take more than MAX_PADDED positions: a
    few lines far longer than the rest (a paragraph pasted into a list of names) would cost each item their
    length. Names the longest item's line."""
    n, longest = sum(map(len, lists)), max((len(w) for lst in lists for w in lst), default=0)
    if n * (longest + 1) <= MAX_PADDED:
        return
    spec, item = max(((spec, max(lst, key=len)) for spec, lst in zip(specs, lists)), key=lambda x: len(x[1]))
    line = line_of_item(spec, item) if Path(str(spec)).exists() else None
    typical = sorted(len(w) for lst in lists for w in lst)[n // 2]
    where = f"{spec}:{line}" if line else f"{spec}"
    raise UserError(f"{where}: an item of {longest:,} characters among {n:,} items of {typical} or so: every item is "
                    f"padded to the longest, {n * (longest + 1) * 16 / 1e9:.1f} GB; at most {MAX_PADDED * 16 / 1e9:.1f} "
                    f"GB (shorten the longest items, or use fewer items)")


def class_name(spec) -> str:
    return Path(str(spec)).stem
