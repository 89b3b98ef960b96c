"""Names written as the list writes its items (style.py): every item fits its list's style, what no item writes is
refused, and drawing with the style gives exactly the names drawn without it that fit, in order: the model's own
names conditioned on the style."""

import random

import pytest
import torch

import makemore
from makemore.draw import Sampler
from makemore.errors import ConfigError
from makemore.sample import Job, Options, generate_jobs
from makemore.style import Style, pairs_of

from conftest import assert_one_line_error, cli

PLACES = ["Den Haag", "IJsselstein", "'s-Hertogenbosch", "Alphen aan den Rijn", "Bergen op Zoom", "Zaandam",
          "Nieuw-Vennep", "Oud-Beijerland", "Kralingse Veer", "Ter Aar"]
MEXICAN = ["El Retiro", "San Juan (Norte)", "La Loma [Fraccionamiento]", "Santa Ana", "Ejido 20 de Noviembre",
           "Colonia (La Ex-Hacienda)", "Tepetlán", "Los Reyes, Acaquilpan"]
RUSSIAN = ["Москва", "Нижний Новгород", "Ростов-на-Дону", "Старое Село"]
KANJI = ["東京", "大阪", "さいたま", "横浜"]


@pytest.mark.parametrize("items", [PLACES, MEXICAN, RUSSIAN, KANJI])
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
    assert Style.of(KANJI) is None  # letters without case, no marks: nothing to refuse
    assert Style.of(["anna", "bob", "x"]) is None  # lower-case words: nothing a name could write is refused
    assert dutch.fits("")  # an empty name (min_len 0) is a length, not a way of writing
    with pytest.raises(ConfigError, match="list_style: expected true or false"):
        makemore.load(places_run).generate(5, list_style="no")


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
    assert all(style.fits(w) for w in run.generate(200, seed=5, max_len=30))
    assert not all(style.fits(w) for w in run.generate(200, seed=5, max_len=30, list_style=False))


def test_the_command_line_and_the_http_api_take_the_style(places_run):
    run = makemore.load(places_run)
    styled = cli("sample", places_run, "-n", 50, "--seed", 1)
    assert styled.returncode == 0, styled.stderr
    names = [line.removesuffix(" *") for line in styled.stdout.splitlines()[:50]]
    assert all(run.style(None).fits(w) for w in names)
    free = cli("sample", places_run, "-n", 50, "--seed", 1, "--no-list-style")
    assert free.returncode == 0 and free.stdout != styled.stdout
    assert_one_line_error(cli("sample", places_run, "--no-list-style=yes"), "--no-list-style")

    from fastapi.testclient import TestClient

    from makemore.serve import create_app

    client = TestClient(create_app(places_run))
    for list_style in (True, False):
        body = client.post("/api/generate", json={"n": 40, "seed": 2, "list_style": list_style}).json()
        fits = [run.style(None).fits(x["name"]) for x in body["names"]]
        assert len(fits) == 40 and (all(fits) if list_style else not all(fits))
    r = client.post("/api/generate", json={"list_style": "sometimes"})
    assert r.status_code == 422 and r.json()["error"].startswith("list_style: "), r.text


def test_the_style_refuses_exactly_the_names_with_a_pair_no_item_has():
    rng = random.Random(0)
    for items in [PLACES, MEXICAN, RUSSIAN]:
        style, chars = Style.of(items), sorted(set("".join(items)))
        assert style.pairs == frozenset().union(*map(pairs_of, items))
        for _ in range(3000):
            word = "".join(rng.choice(chars) for _ in range(rng.randint(1, 6)))
            by_pairs = pairs_of(word) <= style.pairs
            assert (style.refused is None or style.refused.search(word) is None) == by_pairs, word
