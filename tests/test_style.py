"""Names written as the list writes its items (style.py): every item fits its list's style, what no item writes is
refused, and drawing with the style gives exactly the names drawn without it that fit, in order: the model's own
names conditioned on the style."""

import collections
import random

import pytest
import torch

import makemore
from makemore.draw import Sampler
from makemore.errors import ConfigError
from makemore.sample import Job, Options, generate_jobs
from makemore.style import BRACKETS, CASED, LETTER_USES, RARE, WORDY, Style, closes, combining, kind, pairs_of

from conftest import assert_one_line_error, cli

PLACES = ["Den Haag", "IJsselstein", "'s-Hertogenbosch", "Alphen aan den Rijn", "Bergen op Zoom", "Zaandam",
          "Nieuw-Vennep", "Oud-Beijerland", "Kralingse Veer", "Ter Aar"]
MEXICAN = ["El Retiro", "San Juan (Norte)", "La Loma [Fraccionamiento]", "Santa Ana", "Ejido 20 de Noviembre",
           "Colonia (La Ex-Hacienda)", "Tepetlán", "Los Reyes, Acaquilpan"]
RUSSIAN = ["Москва", "Нижний Новгород", "Ростов-на-Дону", "Старое Село"]
US = ["McGregor", "McRae", "DeKalb", "LaGrange"] + [f"{where}{a}{b}" for where in ("", "West ", "New ")
                                                    for a in ("Spring", "Oak", "Fair", "Green", "Wood")
                                                    for b in ("field", "land", "ville", "ton", "wood", "dale")]
CAMEL = ["PayPal", "YouTube", "LinkedIn", "WordPress", "DropBox", "FaceTime", "SoundCloud", "PowerPoint"]
KANJI = ["東京", "大阪", "さいたま", "横浜"]
HINDI = ["सुमन", "किरण", "प्रिया", "अंजलि", "राजेश", "दीपिका", "सूरज", "गोपाल", "सिंह"]
THAI = ["กิ้ง", "มั่น", "สุข", "วันดี", "สมพร"]
HEBREW = ["אברהם", "מרים", "אהרן", "שמעון", "בנימין", "מנחם", "נחום", "חיים", "רחל", "לאה", "יעקב", "משה"] * 7
GREEK = ["Νικόλαος", "Γεώργιος", "Κώστας", "Σταύρος", "Μαρία", "Ελένη", "Ιωάννης", "Δημήτρης", "Σοφία"] * 4


@pytest.mark.parametrize("items", [PLACES, MEXICAN, RUSSIAN, KANJI, US, HINDI, THAI])
def test_every_item_fits_its_lists_style(items):
    style = Style.of(items)
    assert style is None or all(style.fits(w) for w in items)


def test_a_style_refuses_what_no_item_writes(places_run):
    dutch, mexican, russian = Style.of(PLACES), Style.of(MEXICAN), Style.of(RUSSIAN)
    assert dutch.fits("Nieuw-Zaandam") and dutch.fits("Den Bergen") and dutch.fits("IJsselveer")
    for name in ["SitzDroaaf", "den Haag", "Zaan-", "Bergen  Zoom", "Oud-Nieuw-Veer", "Zaandam2", "Ter(Aar)"]:
        assert not dutch.fits(name), name
    assert mexican.fits("San Ana (La Loma)") and mexican.fits("Ejido 5 de Mayo")
    for name in ["El Retiro)", "San Juan (Norte", "La (Loma) (Norte)", "Tepe]tlán[", "SantaAna"]:
        assert not mexican.fits(name), name
    assert russian.fits("Нижнее Село") and not russian.fits("МосКва") and not russian.fits("москва")
    us = Style.of(US)  # a capital inside a word in 4 of 94 items, after "Mc", "De" and "La": there only
    assert us.contexts == {("lower", "upper"): frozenset({"Mc", "De", "La"})}
    assert Style.of(CAMEL).contexts == {} and Style.of(CAMEL).fits("BookFace")  # in every item: anywhere
    assert us.fits("McAllen") and us.fits("DeWitt") and us.fits("Oak McGrange") and us.fits("MacLeod") is False
    assert not us.fits("HulphyeMuiyson") and not us.fits("LeClaire") and not us.fits("GlayD City")
    assert Style.of(KANJI) is None  # letters without case, no marks: nothing to refuse
    assert Style.of(["anna", "bob", "x"]) is None  # lower-case words: nothing a name could write is refused
    assert dutch.fits("")  # an empty name (min_len 0) is a length, not a way of writing
    assert kind("-") == "-" and kind("™") == kind("😀") == "symbol"  # a mark its own kind; symbols one kind
    emoji = Style.of([f"{w}{chr(0x1F300 + i)}" for i, w in enumerate(["ab", "cd", "ef"] * 300)])  # 900 of them
    assert emoji.fits("gh😎") and not emoji.fits("gh") and not emoji.fits("😎gh")
    with pytest.raises(ConfigError, match="list_style: expected true or false"):
        makemore.load(places_run).generate(5, list_style="no")


def test_a_letter_that_starts_no_word_starts_none():
    """A letter used LETTER_USES times or more and never first in a word (at the start or after a space) is not
    first in a name's word: a Thai vowel that follows its consonant. Letters without case only."""
    thai = Style.of(["กา", "ขา", "มะ", "นา", "ปะ", "ตา", "สะ"] * 7)
    assert thai.never_first == {"า", "ะ"} and thai.fits("นะ") and not thai.fits("าก") and not thai.fits("ะ")
    places = Style.of([f"San {w} de la {v}" for w in ("Juan", "José", "Jorge", "Pablo") for v in ("Loma", "Joya")] * 3)
    assert places.never_first == frozenset() and places.fits("San Jorge de la Juan")  # cased: the few lower-case
    # words after a space ("de", "la") are too few to tell which letters start none
    assert Style.of(["tiny", "list"]) is None  # too few uses to tell


def test_a_letter_that_ends_every_word_it_is_in_ends_a_word():
    """A letter used LETTER_USES times or more and never before a letter (Hebrew's final forms, Greek's ς) is not
    put before a letter; a letter used less is free, as is one the list puts before a letter once."""
    hebrew, greek = Style.of(HEBREW), Style.of(GREEK)
    assert hebrew.finals == {"ם", "ן"} and greek.finals == {"ς"}
    assert hebrew.fits("אברם") and hebrew.fits("נחמן") and not hebrew.fits("מםרה") and not hebrew.fits("ןאה")
    assert greek.fits("Νικόλας") and not greek.fits("Κώσςτας") and greek.fits("Σίσυφος")
    assert Style.of(HEBREW[:12]) is None  # 12 items: ם used 6 times, too few to tell, and nothing else to refuse
    assert Style.of(GREEK + ["Άςα"]).finals == frozenset()  # once before a letter: not a final letter
    assert Style.of(["anna", "bob", "max"] * 30).finals == {"x"} and not Style.of(["max"] * 30).fits("maxim")
    assert Style.of(["anna", "bob", "max", "maxim", "ina", "ona", "xia", "nia"] * 30) is None  # nothing to refuse


def test_a_combining_mark_sits_where_the_lists_marks_sit():
    """Each combining mark is its own kind: none at the start or after a space, none on a mark that carries none
    in the list; two side by side where the first carries a mark in the list and the second sits on one. What
    follows a mark used fewer than LETTER_USES times is what may follow a letter: too few uses to tell."""
    hindi, thai = Style.of(HINDI * 4), Style.of(THAI * 20)  # each vowel sign of the names 20 times or more
    assert kind("ि") == "ि" and hindi.fits("सुरेश") and hindi.fits("किंरण")  # ि carries ं in "सिंह"
    for name in ["उशाविा", "ािनय", "सुम ंन", "ंसुमन"]:  # two vowel signs on one letter; a mark on nothing
        assert not hindi.fits(name), name
    assert hindi.most == {}  # marks are not counted as punctuation is
    assert thai.fits("ปิ่น")  # ิ carries ้ and ั carries ่ in the list, so ิ may carry ่
    assert not thai.fits("กิุ") and not thai.fits("่กา")  # ุ sits on no mark in the list; a tone mark on nothing
    assert Style.of(HINDI).fits("उशाविा") and not Style.of(HINDI).fits("ािनय")  # ि 5 times: what follows it is free


@pytest.fixture(scope="module")
def places_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("style")
    rng = random.Random(0)
    words = ["veen", "dam", "berg", "haag", "zoom", "rijn", "aar", "wijk", "dorp", "hout"]
    items = {" ".join(rng.choice(words).capitalize() + rng.choice(words) for _ in range(rng.randint(1, 2)))
             for _ in range(300)}
    data = folder / "places.txt"
    data.write_text("\n".join(sorted(items)) + "\n", encoding="utf-8")
    # a bigram barely trained: it writes capitals anywhere, as a weak model of a short list does
    makemore.train(data, out=folder / "run", model="bigram", steps=300, verbose=False, device="cpu")
    return folder / "run"


def test_drawing_with_the_style_gives_the_names_drawn_without_it_that_fit(places_run):
    run = makemore.load(places_run)
    style = run.style(None)
    assert style is not None
    options = Options(min_len=1, max_len=30).check(run.vocab)
    sampler = Sampler(40, options, torch.Generator().manual_seed(3), style=style.fits)
    free, again = [], torch.Generator().manual_seed(3)
    while (job := sampler.next_job()) is not None:  # draw(), each round also drawn with no style, its rows alike
        sampler.take(generate_jobs(run.model, run.vocab, [job])[0])
        free += [r[0] for r in generate_jobs(run.model, run.vocab, [Job(job.rows, options, again)])[0] if r]
    styled = sampler.result()
    assert styled.complete and styled.rounds >= 1
    assert styled.names == [w for w in free if style.fits(w)][:40]
    assert not all(style.fits(w) for w in free)  # some were drawn again
    assert styled.drawn == [w for w in free if style.fits(w)]  # and do not count in novelty
    assert styled.unstyled == sum(not style.fits(w) for w in free)  # and are counted
    assert all(style.fits(w) for w in run.generate(200, seed=5, max_len=30))
    assert not all(style.fits(w) for w in run.generate(200, seed=5, max_len=30, list_style=False))


def test_the_command_line_and_the_http_api_take_the_style(places_run):
    run = makemore.load(places_run)
    styled = cli("sample", places_run, "-n", 50, "--seed", 1)
    assert styled.returncode == 0, styled.stderr
    names = [line.removesuffix(" *") for line in styled.stdout.splitlines()[:50]]
    assert all(run.style(None).fits(w) for w in names)
    assert "not written as the list writes (--no-list-style keeps them)" in styled.stdout.splitlines()[-1]
    free = cli("sample", places_run, "-n", 50, "--seed", 1, "--no-list-style")
    assert free.returncode == 0 and free.stdout != styled.stdout and "not written" not in free.stdout
    assert_one_line_error(cli("sample", places_run, "--no-list-style=yes"), "--no-list-style")

    from fastapi.testclient import TestClient

    from makemore.serve import create_app

    client = TestClient(create_app(places_run))
    for list_style in (True, False):
        body = client.post("/api/generate", json={"n": 40, "seed": 2, "list_style": list_style}).json()
        fits = [run.style(None).fits(x["name"]) for x in body["names"]]
        assert len(fits) == 40 and (all(fits) if list_style else not all(fits))
        assert (body["unstyled"] > 0) == list_style
    r = client.post("/api/generate", json={"list_style": "sometimes"})
    assert r.status_code == 422 and r.json()["error"].startswith("list_style: "), r.text


def reference(items):
    """style.fits written the slow way: the pairs of each item, the contexts of each change of case by a scan."""
    pairs, contexts = frozenset().union(*map(pairs_of, items)), collections.defaultdict(set)
    for w in items:
        for j in range(1, len(w)):
            contexts[kind(w[j - 1]), kind(w[j])].add(w[max(0, j - 2):j])
    having = {p: sum(p in pairs_of(w) for w in items) for p in contexts}
    rare = {p: c for p, c in contexts.items() if p[0] in CASED and p[1] == "upper" and having[p] < RARE * len(items)}
    stacked = [(a, b) for a, b in pairs if combining(a) and combining(b)]
    pairs |= {(a, b) for a, _ in stacked for _, b in stacked}
    uses = collections.Counter("".join(items))
    pairs |= {(m, b) for m in uses if combining(m) and uses[m] < LETTER_USES for a, b in pairs if a == "letter"}
    marks = {ch for w in items for ch in w if kind(ch) == ch and not combining(ch)}
    finals = {ch for ch in uses if kind(ch) in WORDY and uses[ch] >= LETTER_USES
              and not any(a == ch and kind(b) in WORDY for w in items for a, b in zip(w, w[1:]))}
    never_first = {ch for ch in uses if kind(ch) == "letter" and uses[ch] >= LETTER_USES
                   and not any(w[j] == ch and (j == 0 or w[j - 1] == " ") for w in items for j in range(len(w)))}
    closed = [(o, c) for o, c in BRACKETS.items() if (o in marks or c in marks) and all(closes(w, o, c) for w in items)]

    def fits(word):
        if not word:
            return True
        changes = ((word[max(0, j - 2):j], (kind(word[j - 1]), kind(word[j]))) for j in range(1, len(word)))
        return (pairs_of(word) <= pairs and all(pair not in rare or before in rare[pair] for before, pair in changes)
                and not any(a in finals and kind(b) in WORDY for a, b in zip(word, word[1:]))
                and not any(word[j] in never_first and (j == 0 or word[j - 1] == " ") for j in range(len(word)))
                and all(word.count(m) <= max(w.count(m) for w in items) for m in marks)
                and all(closes(word, o, c) for o, c in closed))
    return fits


@pytest.mark.parametrize("items", [PLACES, MEXICAN, RUSSIAN, US, CAMEL, HINDI + THAI, HEBREW + GREEK])
def test_the_style_refuses_exactly_what_the_slow_way_refuses(items):
    rng = random.Random(0)
    style, slow, chars = Style.of(items), reference(items), sorted(set("".join(items)))
    assert style.pairs >= frozenset().union(*map(pairs_of, items))
    words = ["".join(rng.choice(chars) for _ in range(rng.randint(1, 7))) for _ in range(3000)]
    words += [rng.choice(["Mc", "De", "Le", "a", "", "S"]) + rng.choice(items) for _ in range(500)]
    got = [style.fits(w) for w in words]
    assert got == [slow(w) for w in words] and any(got) and not all(got)
