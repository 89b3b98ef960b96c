"""How a list writes its items, learned from the items: which kinds of character follow which (a capital after a
lower-case letter, a digit inside a word, a word that starts with a hyphen), how many of each punctuation mark
an item has at most, and whether its brackets close. A generated name that breaks what every item of the list
keeps ("SitzDroaaf", "El Retiro)") is drawn again (draw.Sampler): the names are then the model's own,
conditioned on writing as the list writes.

Kinds of character: upper case, lower case, a letter without case (kanji, kana, Arabic), a digit, a space, a
symbol (an emoji, a trademark sign), each punctuation mark its own kind (a hyphen, an apostrophe, a bracket) and
each combining mark its own kind (a Devanagari vowel sign, a Thai tone mark, an Arabic shadda). The rule is the
pairs of kinds side by side, the start and the end of an item counted as kinds: pairs, not longer runs, so that
a list of a few hundred items has seen nearly every pair its own names use (on eight lists of 300 to 3,000 items
never used in training, at most 2 of 600 held-out items broke their training split's rule). A combining mark
sits on the letter before it, so a mark at the start, after a space or after a mark that never carries it
writes what the list cannot: "उशाविा" (two vowel signs on one letter) from 335 Hindi names, "ّاسح" (a shadda on
nothing) from Arabic ones. Two marks side by side are allowed where the first carries some mark in the list and
the second sits on some mark there: a Thai vowel sign that takes a tone mark takes any (0 of 100 held-out Thai
names refused, 2 with the pairs alone), while a mark that never carries one, or never sits on one, stays alone.
What follows a mark used fewer than LETTER_USES times is what may follow a letter: too few uses to tell (a
Devanagari nukta seen a few times refused a held-out name otherwise).

Where a letter sits in a word, for a letter the list uses at least LETTER_USES times: one it never puts before a
letter (Hebrew's final forms, Greek's ς, an Arabic hamza in these names) ends a word in a name too ("ריםד" from
593 Hebrew names, "Μαριόςν" from Greek ones), and a letter without case that it never puts first in a word (a
Thai vowel, Tamil's ண, the 市 of Japanese places) does not start one ("ะลักษณ์", "市町"). Not for cased letters:
a list's lower-case words after a space are a few ("de", "in", "near"), and held-out "Oog in Al" and "Kingston
near Lewes" were refused. One thing more: a
capital inside a word (after a lower-case letter, or after a capital) that fewer than RARE of the items have is
allowed only after the two characters it follows in them: the "Mc" of "McGregor" and the "De" of "DeKalb" let
"McAllen" be written, not "HulphyeMuiyson"; a list of names like "PayPal" and "YouTube" keeps them free."""

from __future__ import annotations

import collections
import functools
import operator
import re
import unicodedata
from dataclasses import dataclass

START, END = "start", "end"  # kinds are names of more than one character, a punctuation mark its own character
BRACKETS = {"(": ")", "[": "]", "{": "}"}
CASED = ("upper", "lower")
RARE = 0.05  # a capital inside a word that fewer items than this share have is allowed only where they have it
WORDY = ("upper", "lower", "letter")  # the kinds of a letter
LETTER_USES = 20  # a letter used this often and never before a letter ends a word; never first, starts none


@functools.lru_cache(maxsize=65_536)  # a name's characters are looked up at every draw
def kind(ch: str) -> str:
    if ch.isupper():
        return "upper"
    if ch.islower():
        return "lower"
    if ch.isdigit():
        return "digit"
    if ch.isspace():
        return "space"
    category = unicodedata.category(ch)
    if category.startswith("M"):  # a combining mark: its own kind, as what it may sit on is its own
        return ch
    if ch.isalpha():
        return "letter"
    # a punctuation mark is its own kind (a hyphen, a bracket); symbols (emoji, a trademark sign) are one kind: a
    # list of product names may hold hundreds, and a kind each took 4 s to learn and 160 microseconds a name to check
    return ch if category.startswith("P") else "symbol"


def combining(kind_: str) -> bool:
    """Whether a kind is a combining mark's (the mark itself)."""
    return len(kind_) == 1 and unicodedata.category(kind_).startswith("M")


def pairs_of(word: str) -> set[tuple[str, str]]:
    kinds = [START] + [kind(ch) for ch in word] + [END]
    return set(zip(kinds, kinds[1:]))


def closes(word: str, opening: str, closing: str) -> bool:
    depth = 0
    for ch in word:
        depth += (ch == opening) - (ch == closing)
        if depth < 0:
            return False
    return depth == 0


@dataclass(frozen=True)
class Style:
    pairs: frozenset  # of (kind, kind): the pairs side by side the list has
    most: dict  # a punctuation mark -> the most of it one item has
    brackets: tuple  # (opening, closing) pairs that every item of the list closes
    chars: frozenset  # the list's characters: a name has no other
    contexts: dict  # (kind, "upper") of a capital inside a word that few items have -> the characters it follows
    # in them, two (one at the start of a word): "Mc" for "McGregor"
    finals: frozenset = frozenset()  # letters that end a word: never before a letter, in LETTER_USES uses or more
    never_first: frozenset = frozenset()  # letters never first in a word (at the start or after a space), as often

    @classmethod
    def of(cls, items) -> Style | None:
        """The list's style; None where it forbids nothing a name could write (a list of lower-case words)."""
        items = [w for w in items if w]
        if not items:
            return None
        chars = frozenset().union(*items)
        # the pairs of characters of the items joined, between an end and a start: a pass in C over 2M characters
        # of 234,450 words (a name's pairs one by one took seconds there)
        unused = (chr(c) for c in range(0xF0000, 0x110000) if chr(c) not in chars)  # private use, past any list's
        start, end = next(unused), next(unused)
        text = start + (end + start).join(items) + end
        kinds = {ch: kind(ch) for ch in chars} | {start: START, end: END}
        side_by_side = set(zip(text, text[1:])) - {(end, start)}
        pairs = {(kinds[a], kinds[b]) for a, b in side_by_side}
        stacked = [(a, b) for a, b in pairs if combining(a) and combining(b)]  # a mark on a mark
        pairs |= {(a, b) for a, _ in stacked for _, b in stacked}
        uses = collections.Counter(text)
        rare_marks = [ch for ch in chars if combining(ch) and uses[ch] < LETTER_USES]  # too few uses to tell what
        pairs = frozenset(pairs | {(m, b) for m in rare_marks for a, b in pairs if a == "letter"})  # follows them
        contexts = {}
        for a, b in pairs & {(a, "upper") for a in CASED}:  # a capital inside a word: if rare, what it follows
            firsts, seconds = map(one_of, zip(*((x, y) for x, y in side_by_side if (kinds[x], kinds[y]) == (a, b))))
            having = re.compile(firsts + seconds)
            if sum(having.search(w) is not None for w in items) < RARE * len(items):
                found = set(re.findall(f"(?=(.)({firsts}){seconds})", text, flags=re.DOTALL))
                contexts[a, b] = frozenset(("" if c0 == start else c0) + c1 for c0, c1 in found)
        before_letters = {a for a, b in side_by_side if kinds[b] in WORDY}
        first = {b for a, b in side_by_side if kinds[a] in (START, "space")}
        letters = [ch for ch in chars if kinds[ch] in WORDY and uses[ch] >= LETTER_USES]
        finals = frozenset(ch for ch in letters if ch not in before_letters)
        never_first = frozenset(ch for ch in letters if ch not in first and kinds[ch] == "letter")  # no case: in a
        # cased list, the lower-case letters after a space are a few short words ("de", "in", "near"), too few to tell
        marks = sorted(ch for ch in chars if kinds[ch] == ch and not combining(ch))  # the punctuation marks
        most = {ch: max(map(operator.methodcaller("count", ch), items)) for ch in marks}
        brackets = tuple((o, c) for o, c in BRACKETS.items() if (o in marks or c in marks)
                         and all(closes(w, o, c) for w in items if o in w or c in w))
        style = cls(pairs, most, brackets, chars, contexts, finals, never_first)
        if style.refused is None and not most and not contexts:  # nothing to refuse, count or close
            return None
        return style

    @functools.cached_property
    def of_kind(self) -> dict:
        made = {}
        for ch in sorted(self.chars):
            made.setdefault(kind(ch), []).append(ch)
        return made

    @functools.cached_property
    def refused(self) -> re.Pattern | None:
        """A pattern that finds a pair of characters side by side (or at the start or the end) whose kinds no item
        has side by side: one search in C where a loop over the name's pairs in Python took 4 microseconds."""
        parts = []
        for a in [START, *self.of_kind]:
            after = [b for b in self.of_kind if (a, b) not in self.pairs]
            if after:
                parts.append(("^" if a == START else self.any_of([a])) + self.any_of(after))
        ends = [a for a in self.of_kind if (a, END) not in self.pairs]
        if ends:
            parts.append(self.any_of(ends) + "$")
        letters = [k for k in WORDY if k in self.of_kind]
        if self.finals:  # a letter that ends a word, before a letter
            parts.append(one_of(self.finals) + self.any_of(letters))
        if self.never_first:  # a letter never first in a word, first
            parts.append(f"(?:^|{self.any_of(['space'])})" if "space" in self.of_kind else "^")
            parts[-1] += one_of(self.never_first)
        return re.compile("|".join(parts)) if parts else None

    @functools.cached_property
    def rare_capitals(self) -> re.Pattern | None:
        """A pattern that finds a rare capital inside a word (self.contexts): capitals_fit's loop runs only on a name
        that has one."""
        parts = [self.any_of([a]) + self.any_of([b]) for a, b in self.contexts]
        return re.compile("|".join(parts)) if parts else None

    def any_of(self, kinds) -> str:
        return one_of(ch for k in kinds for ch in self.of_kind[k])

    def table(self) -> dict:
        """The style as JSON for the exported page (static/web/makemore.js fits as fits() here): each character's
        kind, the pairs, the rare capitals inside a word and what they follow, the marks' counts, the brackets, the
        letters that end a word and those that start none."""
        return {"kinds": {ch: kind(ch) for ch in sorted(self.chars)}, "pairs": sorted(map(list, self.pairs)),
                "contexts": [[a, b, sorted(c)] for (a, b), c in sorted(self.contexts.items())],
                "most": self.most, "brackets": [list(b) for b in self.brackets], "finals": sorted(self.finals),
                "never_first": sorted(self.never_first)}

    def fits(self, word: str) -> bool:
        if not word:  # an empty name is asked for (min_len 0), not a way of writing
            return True
        ours = self.chars.issuperset(word)  # the patterns know the list's characters; another word: pair by pair
        paired = ((self.refused is None or self.refused.search(word) is None) if ours else
                  pairs_of(word) <= self.pairs and self.letters_fit(word))
        capitals = self.rare_capitals is not None and (not ours or self.rare_capitals.search(word) is not None)
        return (paired and (not capitals or self.capitals_fit(word))
                and all(word.count(ch) <= n for ch, n in self.most.items())
                and all(closes(word, o, c) for o, c in self.brackets if o in word or c in word))

    def letters_fit(self, word: str) -> bool:
        """Whether no letter that ends a word is before a letter and none never first is first: the pattern's
        check, for a word with characters the list does not have."""
        kinds = [START, *map(kind, word), END]
        return not any(ch in self.finals and kinds[i + 2] in WORDY or ch in self.never_first and kinds[i] in (START, "space")
                       for i, ch in enumerate(word))

    def capitals_fit(self, word: str) -> bool:
        """Whether each rare capital inside a word follows what it follows in the list."""
        for j in range(1, len(word)):
            allowed = self.contexts.get((kind(word[j - 1]), kind(word[j])))
            if allowed is not None and word[max(0, j - 2):j] not in allowed:
                return False
        return True


def one_of(chars) -> str:
    return "[" + "".join(re.escape(ch) for ch in sorted(chars)) + "]"
