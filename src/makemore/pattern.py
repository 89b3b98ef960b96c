"""Shapes a name must have, as a deterministic automaton over a run's vocabulary: a regular expression that the
whole name matches (Python's syntax, as far as an automaton can express it), a suffix, substrings, or all of
them at once. Generation reads it to keep only names that match, or to steer each step toward a match.

An Automaton's states are numbered from 0 (the start); next[s, t] is the state after token t (-1: no match can
follow), accepting[s] whether a name may end there. Only live states are kept: from each, an accepting state can
still be reached."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import torch

try:
    from re import _parser
    from re._constants import MAXREPEAT
except ImportError:  # pragma: no cover - Python before 3.11
    import sre_parse as _parser
    from sre_constants import MAXREPEAT

from makemore.data import BOUNDARY, Vocab
from makemore.errors import ConfigError

MAX_STATES = 20_000  # an automaton with more is refused: the pattern is too intricate to steer by
MAX_REPEAT = 100  # {m,n} counts beyond this are refused (a name is at most 1,000 characters anyway)

CATEGORIES = {"CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_SPACE": r"\s",
              "CATEGORY_NOT_SPACE": r"\S", "CATEGORY_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W"}
REFUSED = {"GROUPREF": "a backreference", "GROUPREF_EXISTS": "a conditional group (?(...)...)",
           "ASSERT": "a lookahead or lookbehind", "ASSERT_NOT": "a negative lookahead or lookbehind",
           "ATOMIC_GROUP": "an atomic group (?>...)", "POSSESSIVE_REPEAT": "a possessive repeat (*+, ++, ?+)"}


@dataclass
class Automaton:
    next: torch.Tensor  # (S, V) long: the next state, -1 where no match can follow
    accepting: torch.Tensor  # (S,) bool
    to_end: torch.Tensor | None = None  # (S,) long: the fewest tokens from the state to an accepting one

    def __post_init__(self):
        if self.to_end is None:
            far = len(self.accepting) + 1
            to_end = torch.where(self.accepting, 0, far)
            while True:  # one step back at a time, from the accepting states
                after = torch.where(self.next >= 0, to_end[self.next.clamp(min=0)], far).amin(dim=1) + 1
                shorter = torch.minimum(to_end, after)
                if torch.equal(shorter, to_end):
                    break
                to_end = shorter
            self.to_end = to_end

    @property
    def states(self) -> int:
        return len(self.accepting)

    def allowed(self, states: torch.Tensor) -> torch.Tensor:
        """(B,) states -> (B, V) bool: the tokens after which a match is still possible, the end token where the
        state accepts."""
        ok = self.next[states] >= 0
        ok[:, BOUNDARY] = self.accepting[states]
        return ok

    def advance(self, states: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.next[states, tokens]

    def matches(self, tokens: list[int]) -> bool:
        state = 0
        for t in tokens:
            state = int(self.next[state, t])
            if state < 0:
                return False
        return bool(self.accepting[state])

    def to(self, device) -> Automaton:
        return Automaton(self.next.to(device), self.accepting.to(device), self.to_end.to(device))


# ----------------------------------------------------------------------------- regular expressions -> NFA


class NFA:
    """Thompson's construction: states with epsilon moves and moves on sets of tokens."""

    def __init__(self):
        self.eps: list[list[int]] = []
        self.moves: list[list[tuple[frozenset, int]]] = []

    def state(self) -> int:
        self.eps.append([])
        self.moves.append([])
        return len(self.eps) - 1


def parse(pattern: str):
    """Python's own parse of the expression (its errors are Python's), flags refused."""
    try:
        parsed = _parser.parse(pattern)
    except re.error as e:
        raise ConfigError("pattern", f"not a regular expression: {e}") from None
    if parsed.state.flags & ~(re.UNICODE | re.ASCII):
        raise ConfigError("pattern", "inline flags such as (?i) are not supported")
    return parsed


def token_set(op, arg, vocab: Vocab) -> frozenset:
    """The tokens (1..V-1) one character node matches."""
    name = str(op)
    if name == "LITERAL":
        return frozenset([vocab.stoi[chr(arg)]]) if chr(arg) in vocab.stoi else frozenset()
    if name == "NOT_LITERAL":
        return frozenset(i for ch, i in vocab.stoi.items() if ch != chr(arg))
    if name == "ANY":
        return frozenset(i for ch, i in vocab.stoi.items() if ch != "\n")
    if name == "CATEGORY":
        return frozenset(i for ch, i in vocab.stoi.items() if re.fullmatch(CATEGORIES[str(arg)], ch))
    if name == "IN":
        negate = bool(arg) and str(arg[0][0]) == "NEGATE"
        found = set()
        for item_op, item_arg in arg[negate:]:
            kind = str(item_op)
            if kind == "RANGE":
                found |= {i for ch, i in vocab.stoi.items() if item_arg[0] <= ord(ch) <= item_arg[1]}
            elif kind in ("LITERAL", "NOT_LITERAL", "CATEGORY"):
                found |= token_set(item_op, item_arg, vocab)
            else:
                raise ConfigError("pattern", f"{kind.lower()} inside [...] is not supported")
        return frozenset(set(vocab.stoi.values()) - found if negate else found)
    raise AssertionError(name)


def build(nodes, vocab: Vocab, nfa: NFA, start: int) -> int:
    """The NFA of a sequence of parsed nodes from start: its end state."""
    state = start
    for op, arg in nodes:
        name = str(op)
        if name in REFUSED:
            raise ConfigError("pattern", f"{REFUSED[name]} cannot be matched by an automaton")
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN", "CATEGORY"):
            end = nfa.state()
            nfa.moves[state].append((token_set(op, arg, vocab), end))
            state = end
        elif name == "SUBPATTERN":
            state = build(arg[-1], vocab, nfa, state)
        elif name == "BRANCH":
            end = nfa.state()
            for branch in arg[1]:
                first = nfa.state()
                nfa.eps[state].append(first)
                nfa.eps[build(branch, vocab, nfa, first)].append(end)
            state = end
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, body = arg
            unbounded = high == MAXREPEAT
            if low > MAX_REPEAT or (not unbounded and high > MAX_REPEAT):
                raise ConfigError("pattern", f"a repeat of more than {MAX_REPEAT} is not supported")
            for _ in range(low):
                state = build(body, vocab, nfa, state)
            if unbounded:
                loop = nfa.state()
                nfa.eps[state].append(loop)
                nfa.eps[build(body, vocab, nfa, loop)].append(loop)
                state = loop
            else:
                end = nfa.state()
                for _ in range(high - low):
                    nfa.eps[state].append(end)
                    state = build(body, vocab, nfa, state)
                nfa.eps[state].append(end)
                state = end
        elif name == "AT":
            if str(arg) not in ("AT_BEGINNING", "AT_BEGINNING_STRING", "AT_END", "AT_END_STRING"):
                raise ConfigError("pattern", f"the anchor {str(arg).lower()} is not supported")
            # the whole name matches: ^ and $ say what is said anyway (where they stand at its ends)
        else:
            raise ConfigError("pattern", f"{name.lower()} is not supported")
    return state


# ----------------------------------------------------------------------------- NFA -> DFA


def determinize(nfa: NFA, start: int, final: int, V: int) -> Automaton:
    def closure(states) -> frozenset:
        seen, todo = set(states), list(states)
        while todo:
            for t in nfa.eps[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return frozenset(seen)

    first = closure([start])
    index, order, edges = {first: 0}, [first], []
    while len(edges) < len(order):
        current = order[len(edges)]
        row = {}
        for s in current:
            for tokens, target in nfa.moves[s]:
                for t in tokens:
                    row.setdefault(t, set()).add(target)
        out = {}
        for t, targets in row.items():
            out[t] = numbered(closure(targets), index, order)
        edges.append(out)
    nxt = torch.full((len(order), V), -1, dtype=torch.long)
    for s, out in enumerate(edges):
        for t, to in out.items():
            nxt[s, t] = to
    return pruned(nxt, torch.tensor([final in states for states in order]))


def numbered(state, index: dict, order: list) -> int:
    """A state's number among those found so far (index: state -> number, order: the states by number), a new
    one for a new state; at most MAX_STATES of them."""
    if state not in index:
        if len(order) >= MAX_STATES:
            raise ConfigError("pattern", f"too intricate: its automaton has more than {MAX_STATES:,} states")
        index[state] = len(order)
        order.append(state)
    return index[state]


def pruned(nxt: torch.Tensor, accepting: torch.Tensor) -> Automaton:
    """The live states only (an accepting state reachable from them), renumbered with the start first; moves into
    the others become -1. An automaton whose start is not live matches nothing: ConfigError."""
    live = accepting.clone()
    while True:
        reach = live | ((nxt >= 0) & live[nxt.clamp(min=0)]).any(dim=1)
        if torch.equal(reach, live):
            break
        live = reach
    if not live[0]:
        raise ConfigError("pattern", "no name in the run's vocabulary can match it")
    number = torch.full((len(live) + 1,), -1, dtype=torch.long)  # index -1 (dead) stays -1
    number[:-1][live] = torch.arange(int(live.sum()))
    kept = nxt[live]
    return Automaton(number[kept], accepting[live])


def compile_pattern(pattern: str, vocab: Vocab) -> Automaton:
    """The automaton of a regular expression that whole names match."""
    nfa = NFA()
    start = nfa.state()
    final = build(parse(pattern), vocab, nfa, start)
    return determinize(nfa, start, final, vocab.size)


def intersect(a: Automaton, b: Automaton) -> Automaton:
    """The names both match: the product of two automata, its reachable pairs only."""
    index, order, rows = {(0, 0): 0}, [(0, 0)], []
    while len(rows) < len(order):
        s, t = order[len(rows)]
        row = torch.full((a.next.shape[1],), -1, dtype=torch.long)
        both = ((a.next[s] >= 0) & (b.next[t] >= 0)).nonzero()[:, 0].tolist()
        for token in both:
            row[token] = numbered((int(a.next[s, token]), int(b.next[t, token])), index, order)
        rows.append(row)
    accepting = torch.tensor([bool(a.accepting[s]) and bool(b.accepting[t]) for s, t in order])
    return pruned(torch.stack(rows), accepting)


def shape(vocab: Vocab, pattern: str | None = None, ends_with: str = "", contains=()) -> Automaton | None:
    """The automaton of every constraint given (None for none): a pattern the whole name matches, a suffix,
    substrings. A ConfigError names the setting at fault."""
    given = [("pattern", pattern, pattern)] if pattern else []
    if ends_with:
        given.append(("ends_with", ends_with, ".*" + re.escape(ends_with)))
    given += [("contains", text, ".*" + re.escape(text) + ".*") for text in contains]
    automaton = None
    for field, text, expression in given:
        if field != "pattern" and vocab.unknown(text):
            raise ConfigError(field, f"character {vocab.unknown(text)[0]!r} is not in the model's vocabulary")
        try:
            made = compile_pattern(expression, vocab)
            automaton = made if automaton is None else intersect(automaton, made)
        except ConfigError as e:
            raise ConfigError(field, e.message) from None
    return automaton


@functools.lru_cache(maxsize=64)
def cached_shape(chars: tuple, pattern, ends_with: str, contains: tuple) -> Automaton | None:
    return shape(Vocab(chars), pattern, ends_with, contains)


def shape_of(vocab: Vocab, pattern=None, ends_with: str = "", contains: tuple = ()) -> Automaton | None:
    """shape(), made once per vocabulary and constraints (a server compiles a request's pattern once)."""
    return cached_shape(tuple(vocab.chars), pattern, ends_with, tuple(contains))


class Shapes:
    """Where each row of a batch stands in its job's automaton (one table for every job's; a job without a shape
    has a one-state automaton that takes anything). A rejection row fails as soon as no match can follow, or it
    ends where its automaton does not accept. A guided row draws only among the tokens a match can follow (the
    end only where it accepts): that draws from q(x) = p(x) / prod_t Z_t, Z_t the share of p's probability the
    allowed tokens had at step t, so its log importance weight for the conditional p(x | match) is sum_t log Z_t."""

    def __init__(self, table, accepting, state, guided):
        self.table, self.accepting, self.state, self.guided = table, accepting, state, guided
        self.log_weight = torch.zeros(len(state), dtype=torch.float64, device=state.device)
        self.failed = torch.zeros(len(state), dtype=torch.bool, device=state.device)

    @classmethod
    def of(cls, jobs, job_of, V: int) -> Shapes:
        device = job_of.device
        anything = Automaton(torch.zeros((1, V), dtype=torch.long), torch.tensor([True]))
        automata = [j.options.automaton or anything for j in jobs]
        offsets = torch.tensor([0] + [a.states for a in automata]).cumsum(0)[:-1]
        table = torch.cat([torch.where(a.next >= 0, a.next + o, -1) for a, o in zip(automata, offsets.tolist())])
        accepting = torch.cat([a.accepting for a in automata])
        to_end = torch.cat([a.to_end for a in automata])
        guided = torch.tensor([j.options.guided and j.options.automaton is not None for j in jobs])
        made = cls(table.to(device), accepting.to(device), offsets.to(device)[job_of], guided.to(device)[job_of])
        made.to_end = to_end.to(device)
        return made

    def steer(self, rows, logits, free, room):
        """The guided rows' logits (B, V) with the tokens no match can follow made impossible, their log Z added
        to their weights; free (B,): the rows past their prefix (a forced token is not drawn); room (B,): the
        characters a row may still write after this one (a match must be reachable within them)."""
        guided = self.guided[rows] & free
        if not guided.any():
            return logits
        state = self.state[rows]
        after = self.table[state]  # (B, V)
        allowed = (after >= 0) & (self.to_end[after.clamp(min=0)] <= room[:, None])
        allowed[:, BOUNDARY] = self.accepting[state]
        mass = (torch.softmax(logits.double(), dim=-1) * allowed).sum(dim=-1)  # (B,)
        self.log_weight[rows[guided]] += mass[guided].log()
        stuck = guided & (mass <= 0)  # top-k or top-p left no allowed token
        self.failed[rows[stuck]] = True
        return logits.masked_fill((guided & ~stuck)[:, None] & ~allowed, float("-inf"))

    def advance(self, rows, tokens):
        """The rows' states after tokens (B,); the rows that failed, (B,) bool."""
        state = self.state[rows]
        ended = tokens == BOUNDARY
        after = self.table[state, tokens]
        self.failed[rows[(~ended & (after < 0)) | (ended & ~self.accepting[state])]] = True
        self.state[rows] = torch.where(ended, state, after.clamp(min=0))
        return self.failed[rows]

    def resample(self, rows, job_of, generators):
        """A particle method for the guided rows: where a job's rows still being written have grown uneven weights
        (their effective number below half of them), they are drawn again among themselves in proportion to
        their weights (systematic resampling, one uniform from the job's generator), each then with their mean
        weight, so the weights' sum is kept. The positions each row of rows takes its history from, or None."""
        guided = self.guided[rows]
        if not guided.any():
            return None
        jobs, perm, moved = job_of[rows], torch.arange(len(rows), device=rows.device), False
        for j in torch.unique(jobs[guided]).tolist():
            at = (jobs == j).nonzero()[:, 0]  # a job's rows are together
            log_w = self.log_weight[rows[at]]
            w = (log_w - log_w.max()).exp()
            if w.sum() ** 2 / (w**2).sum() >= len(at) / 2:
                continue
            u = torch.rand(1, generator=generators[j], device=rows.device).double()
            cdf = w.cumsum(0)
            points = (u + torch.arange(len(at), device=rows.device)) / len(at) * cdf[-1]
            perm[at] = at[torch.searchsorted(cdf, points).clamp(max=len(at) - 1)]
            self.log_weight[rows[at]] = log_w.max() + w.mean().log()
            moved = True
        if not moved:
            return None
        self.state[rows] = self.state[rows[perm]]
        return perm
