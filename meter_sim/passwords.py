"""Passwords and authority levels (密码与权限) of the plaintext functions.

Levels 0..9 each have a 3-byte password (6 hex digits; DIs 04000C01..04000C0A are
write-only and changed with 18H). Level 0 is the highest authority: a password of
level ``n`` also grants what needs a level ``>= n``. Fee-control meters use level 02
or 04 in plaintext (with the programming key) and the 98/99 levels with the ESAM
(PROTOCOL.md §3.5); those are not passwords and are handled by the security code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["DEFAULT_PASSWORD", "LEVELS", "PLAINTEXT_LEVEL_LIMIT", "Passwords"]

LEVELS: Final = 10
DEFAULT_PASSWORD: Final = "000000"
PLAINTEXT_LEVEL_LIMIT: Final = 4
"""Plaintext writes and commands need a level 00..04 password (02 or 04 in practice)."""
_HEX: Final = frozenset("0123456789ABCDEF")


def _check(password: str) -> str:
    text = password.upper()
    if len(text) != 6 or not _HEX.issuperset(text):
        raise ValueError(f"a password is 6 hex digits, got {password!r}")
    return text


class Passwords:
    """The ten level passwords of one meter."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[int, str] | None = None) -> None:
        self._values = [DEFAULT_PASSWORD] * LEVELS
        for level, password in (values or {}).items():
            if not 0 <= int(level) < LEVELS:
                raise ValueError(f"password level {level} is not 0..9")
            self._values[int(level)] = _check(password)

    def check(self, level: int, password: str, *, need: int = PLAINTEXT_LEVEL_LIMIT) -> bool:
        """True if ``password`` is the level-``level`` password and the level is ``<= need``."""
        if not 0 <= level <= need or level >= LEVELS:
            return False
        return self._values[level] == password.upper()

    def change(self, level: int, new_password: str) -> None:
        self._values[level] = _check(new_password)

    def to_state(self) -> list[str]:
        return list(self._values)

    def restore_state(self, state: list[str]) -> None:
        if len(state) != LEVELS:
            raise ValueError(f"{LEVELS} passwords are needed, got {len(state)}")
        self._values = [_check(str(p)) for p in state]
