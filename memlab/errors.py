"""The errors a user can fix: each names the file, the key and the fix.

The entry points catch UserError, print it and exit with status 2 before any trial runs.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input: a message that says where (file, key) and how to fix it."""

    def __init__(self, message: str, *, file=None, key: str | None = None, fix: str | None = None):
        self.file, self.key, self.fix, self.message = file, key, fix, message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ": ".join(str(p) for p in (self.file, self.key and f"key '{self.key}'") if p)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text}\n  fix: {self.fix}" if self.fix else text


class ConfigError(UserError):
    """The experiment file is wrong."""


class DatasetError(UserError):
    """A dataset is unknown, missing, or failed to download or verify."""


def closest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the nearest choice, or '' when none is near."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def choices_hint(word: str, choices: Iterable[str], limit: int = 12) -> str:
    """'valid choices: a, b, c (did you mean 'b'?)'."""
    choices = sorted(str(c) for c in choices)
    shown = ", ".join(choices[:limit]) + (f", ... ({len(choices)} in all)" if len(choices) > limit else "")
    return f"valid choices: {shown}{closest(word, choices)}"
