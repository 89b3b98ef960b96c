"""A setting described once: its type, its bounds or choices, and its help. The same description checks a value
from Python or a TOML file and makes the command line's flag."""

from __future__ import annotations

import math
from dataclasses import dataclass

from makemore.errors import ConfigError

TYPE_NAMES = {int: "int", float: "float", str: "str", bool: "bool"}


@dataclass(frozen=True)
class Field:
    type: type  # int, float, str or bool
    help: str
    low: float | None = None  # numbers: above low (or from it, with low_inclusive), below high
    low_inclusive: bool = False
    high: float | None = None
    high_inclusive: bool = False
    choices: tuple | None = None  # strings: one of these
    flag: str | None = None  # the flag's name where it is not the field's (block_size: --context)

    @property
    def expected(self) -> str:
        """What a valid value is, in words."""
        if self.choices:
            return f"one of {', '.join(map(str, self.choices))}"
        if self.type not in (int, float) or self.low is None:
            return f"a {TYPE_NAMES[self.type]}"
        if self.high is not None:
            low, high = "[" if self.low_inclusive else "(", "]" if self.high_inclusive else ")"
            number = "an integer" if self.type is int else "a number"
            shown = (lambda v: f"{v:,}") if self.type is int else (lambda v: f"{v:g}")  # noqa: E731
            return f"{number} in {low}{shown(self.low)}, {shown(self.high)}{high}"
        number = "integer" if self.type is int else "number"
        if self.low == 0:
            return f"a {'non-negative' if self.low_inclusive else 'positive'} {number}"
        return f"{'an' if number == 'integer' else 'a'} {number} {'from' if self.low_inclusive else 'above'} {self.low:g}"

    def check(self, name: str, value):
        """The value, if it is one this field takes (an int where a float is wanted becomes a float); else a
        ConfigError naming the field."""
        ok_type = isinstance(value, self.type) and not (self.type is not bool and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok_type = float(value), True
        if not ok_type:
            raise ConfigError(name, f"expected {TYPE_NAMES[self.type]}, got {type(value).__name__} {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(name, f"expected {self.expected}, got {value!r}")
        if self.type in (int, float) and not self.in_bounds(value):
            raise ConfigError(name, f"expected {self.expected}, got {str(value)!r}")
        return value

    def in_bounds(self, value) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low if self.low_inclusive else value <= self.low):
            return False
        return self.high is None or (value <= self.high if self.high_inclusive else value < self.high)

    def parse(self, text: str):
        """A value from the command line's text; ValueError (argparse's cue) with the expected value in words."""
        try:
            value = self.type(text)
        except ValueError:
            raise ValueError(f"expected {self.expected}, got {text!r}") from None
        if self.type in (int, float) and not self.in_bounds(value):
            raise ValueError(f"expected {self.expected}, got {text!r}")
        return value
