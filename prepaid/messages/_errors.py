"""The messages package's exceptions; every message says what is wrong and what to do."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "GatewayError",
    "MessageError",
    "MissingPlaceholderError",
    "NoticeError",
    "OutboxError",
    "TemplateError",
    "UnknownPlaceholderError",
    "UnknownTemplateError",
    "ValueFormatError",
]


class MessageError(Exception):
    """Base class of every error raised on purpose by ``prepaid.messages``."""


class TemplateError(MessageError):
    """A template file that cannot be used (bad TOML, an undeclared placeholder, …)."""


class UnknownTemplateError(TemplateError):
    """A message kind or language that has no template."""


class MissingPlaceholderError(TemplateError):
    """A render call that does not supply every placeholder of the template."""

    def __init__(self, kind: str, lang: str, missing: Iterable[str]) -> None:
        self.kind = kind
        self.lang = lang
        self.missing = tuple(sorted(missing))
        names = ", ".join(self.missing)
        super().__init__(
            f"template {kind!r} ({lang}) needs a value for {names}; "
            f"pass {' '.join(f'{n}=…' for n in self.missing)}"
        )


class UnknownPlaceholderError(TemplateError):
    """A render call that passes a value the template has no placeholder for (a typo?)."""

    def __init__(self, kind: str, unknown: Iterable[str], known: Iterable[str]) -> None:
        self.kind = kind
        self.unknown = tuple(sorted(unknown))
        super().__init__(
            f"template {kind!r} has no placeholder {', '.join(self.unknown)}; "
            f"its placeholders are {', '.join(sorted(known))}"
        )


class ValueFormatError(TemplateError):
    """A placeholder value of the wrong type (a float for money, text for a date, …)."""


class OutboxError(MessageError):
    """The outbox cannot store or find a message."""


class GatewayError(MessageError):
    """An SMS gateway that cannot be configured (bad URL, unwritable sink file)."""


class NoticeError(MessageError):
    """A paper-notice batch that cannot be rendered or written."""
