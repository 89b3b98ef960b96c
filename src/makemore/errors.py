"""The two errors a user can meet: a problem with something they gave (a file, a folder, a value), shown as one
line; and its kind that names a setting, so that each front end can spell the setting its own way."""

from __future__ import annotations

import re


class UserError(Exception):
    """A problem with what the user gave us: shown as one line, exit code 2, no traceback."""


class ConfigError(UserError, ValueError):
    """A bad value of a named setting (a config field, a sampling option).

    The message may name other settings in braces, listed in `mentions`: "50 is not a multiple of {n_head} (4)".
    str() spells every setting as the library does (n_embd: ... n_head ...); render(spell) as a front end
    does: the CLI's --n-embd and --n-head, the HTTP API's JSON fields.
    """

    def __init__(self, field: str, message: str, mentions: tuple[str, ...] = ()):
        self.field, self.message, self.mentions = field, message, mentions
        super().__init__(self.render(str))

    def render(self, spell) -> str:
        names = set(self.mentions)
        text = re.sub(r"\{(\w+)\}", lambda m: spell(m[1]) if m[1] in names else m[0], self.message)
        return f"{spell(self.field)}: {text}"


class Diverged(ConfigError):
    """The training's loss stopped being a finite number: the run ends, keeping what it saved before."""
