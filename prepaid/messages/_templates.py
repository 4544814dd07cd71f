"""Message templates (短信模板): TOML data files with named placeholders, and rendering.

A template directory holds ``kinds.toml`` (each message kind and the type of each of
its placeholders) and one file per language (``zh.toml``, ``en.toml``) with a
signature, the labels of the placeholders (used on paper notices) and, per kind, a
``title`` and a ``text``. Placeholders are written ``{balance}``; a literal brace is
``{{`` or ``}}``. The shipped set is in ``prepaid/templates``; a utility can point
:meth:`TemplateSet.load` at its own directory.

Rendering checks that every placeholder of the kind is supplied (naming the missing
one) and that nothing unknown is passed, and writes each value by its type (see
:mod:`prepaid.messages._format`).
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Formatter
from typing import Any

from ._errors import (
    MissingPlaceholderError,
    TemplateError,
    UnknownPlaceholderError,
    UnknownTemplateError,
)
from ._format import Lang, ValueType, format_value, parse_value
from ._length import SmsLength, sms_length

__all__ = [
    "MessageKind",
    "RenderedMessage",
    "Template",
    "TemplateSet",
    "default_templates",
]


class MessageKind(enum.StrEnum):
    """The message kinds feikong sends; a template directory may add its own."""

    LOW_BALANCE = "low_balance"  # 余额不足提醒
    DUNNING = "dunning"  # 催费 / 停电预警
    DISCONNECTION_NOTICE = "disconnection_notice"  # 停电通知
    DISCONNECTED = "disconnected"  # 已停电
    TOPUP = "topup"  # 缴费到账
    RECONNECTED = "reconnected"  # 已复电
    TIER_REACHED = "tier_reached"  # 阶梯提醒
    MONTHLY_BILL = "monthly_bill"  # 月度账单
    CUSTOM = "custom"  # 自定义短信
    DISCONNECTION_FAILURE = "disconnection_failure"  # 停电失败工单 (to the handler)


@dataclass(frozen=True, slots=True)
class Template:
    """One kind's template in one language."""

    kind: str
    lang: Lang
    title: str
    text: str
    params: Mapping[str, ValueType]  # every placeholder of the kind, in declaration order
    labels: Mapping[str, str]  # placeholder → its label in this language
    signature: str


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A rendered message: its text with the signature, and each value as written."""

    kind: str
    lang: Lang
    title: str
    body: str  # without the signature
    text: str  # signature + body: what the SMS carries
    fields: Mapping[str, str] = field(default_factory=dict)  # placeholder → written value
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def length(self) -> SmsLength:
        return sms_length(self.text)


def _placeholders(text: str, *, where: str) -> list[str]:
    names: list[str] = []
    try:
        parsed = list(Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"{where}: {exc}; write a literal brace as {{{{ or }}}}") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateError(
                f"{where}: placeholder {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} must be a plain name like {{balance}}; "
                "values are formatted by their type in kinds.toml"
            )
        names.append(name)
    return names


def _read_toml(path: Path | Any, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError(f"{where}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{where}: not valid TOML: {exc}") from None


def _kinds(data: dict[str, Any], where: str) -> dict[str, dict[str, ValueType]]:
    kinds: dict[str, dict[str, ValueType]] = {}
    allowed = ", ".join(v.value for v in ValueType)
    for kind, params in data.items():
        if not isinstance(params, dict) or not params:
            raise TemplateError(f"{where}: [{kind}] must be a table of placeholder = type")
        kinds[kind] = {}
        for name, type_name in params.items():
            if not name.isidentifier():
                raise TemplateError(f"{where}: [{kind}] {name!r} is not a placeholder name")
            try:
                kinds[kind][name] = ValueType(type_name)
            except ValueError:
                raise TemplateError(
                    f"{where}: [{kind}] {name} = {type_name!r}: the type must be one of {allowed}"
                ) from None
    if not kinds:
        raise TemplateError(f"{where}: declares no message kinds")
    return kinds


class TemplateSet:
    """Every template of every language in one directory, checked when loaded."""

    def __init__(self, templates: Mapping[tuple[str, Lang], Template], source: str) -> None:
        self._templates = dict(templates)
        self.source = source

    @classmethod
    def load(cls, directory: Path | None = None) -> TemplateSet:
        """Load ``kinds.toml`` and the language files of ``directory`` (default: shipped).

        Raises :class:`TemplateError` naming the file and key of any problem: bad TOML, a
        missing kind or label, a placeholder the kind does not declare.
        """
        base: Any = resources.files("prepaid.templates") if directory is None else directory
        source = "prepaid/templates" if directory is None else str(directory)
        where = f"{source}/kinds.toml"
        kinds = _kinds(_read_toml(base / "kinds.toml", where), where)
        templates: dict[tuple[str, Lang], Template] = {}
        for lang in Lang:
            where = f"{source}/{lang.value}.toml"
            if not (base / f"{lang.value}.toml").is_file():
                continue
            data = _read_toml(base / f"{lang.value}.toml", where)
            templates.update(cls._language(kinds, lang, data, where))
        if not any(lang is Lang.ZH for _kind, lang in templates):
            raise TemplateError(f"{source}: no zh.toml; Chinese is the default language")
        return cls(templates, source)

    @staticmethod
    def _language(
        kinds: dict[str, dict[str, ValueType]], lang: Lang, data: dict[str, Any], where: str
    ) -> dict[tuple[str, Lang], Template]:
        signature = data.get("signature", "")
        labels = data.get("labels", {})
        texts = data.get("templates", {})
        if not isinstance(signature, str):
            raise TemplateError(f'{where}: signature must be a string, e.g. "【供电公司】"')
        if not isinstance(labels, dict) or not isinstance(texts, dict):
            raise TemplateError(f"{where}: [labels] and [templates.KIND] must be tables")
        extra = sorted(set(texts) - set(kinds))
        if extra:
            raise TemplateError(
                f"{where}: [templates.{extra[0]}] is not a kind in kinds.toml "
                f"(kinds: {', '.join(kinds)})"
            )
        out: dict[tuple[str, Lang], Template] = {}
        for kind, params in kinds.items():
            entry = texts.get(kind)
            key = f"{where}: [templates.{kind}]"
            if not isinstance(entry, dict):
                raise TemplateError(f"{key} is missing; every kind needs a title and a text")
            title, text = entry.get("title"), entry.get("text")
            if not isinstance(title, str) or not isinstance(text, str) or not text.strip():
                raise TemplateError(f'{key} needs title = "…" and a non-empty text = "…"')
            for part, value in (("title", title), ("text", text)):
                for name in _placeholders(value, where=f"{key} {part}"):
                    if name not in params:
                        raise TemplateError(
                            f"{key} {part} uses {{{name}}}, which kinds.toml does not declare "
                            f"for {kind} (declared: {', '.join(params)})"
                        )
            missing_labels = [n for n in params if not isinstance(labels.get(n), str)]
            if missing_labels:
                names = ", ".join(missing_labels)
                raise TemplateError(f"{where}: [labels] has no label for {names}")
            out[(kind, lang)] = Template(
                kind, lang, title, text, params, {n: labels[n] for n in params}, signature
            )
        return out

    # -- queries ---------------------------------------------------------------------

    def kinds(self) -> list[str]:
        return list(dict.fromkeys(kind for kind, _lang in self._templates))

    def languages(self) -> list[Lang]:
        return list(dict.fromkeys(lang for _kind, lang in self._templates))

    def get(self, kind: str, lang: Lang | str = Lang.ZH) -> Template:
        try:
            language = Lang(lang)
        except ValueError:
            raise UnknownTemplateError(
                f"no language {lang!r}; use {' or '.join(v.value for v in Lang)}"
            ) from None
        template = self._templates.get((str(kind), language))
        if template is None:
            if not any(k == kind for k, _lang in self._templates):
                raise UnknownTemplateError(
                    f"no message kind {kind!r}; the kinds are {', '.join(self.kinds())}"
                )
            raise UnknownTemplateError(f"{self.source} has no {language.value} template for {kind}")
        return template

    # -- rendering -------------------------------------------------------------------

    def parse_params(self, kind: str, texts: Mapping[str, str]) -> dict[str, object]:
        """Typed values from ``key=value`` text (the CLI): money in yuan, energy in kWh."""
        params = self.get(kind).params
        unknown = set(texts) - set(params)
        if unknown:
            raise UnknownPlaceholderError(str(kind), unknown, params)
        return {k: parse_value(params[k], v, what=f"{k}") for k, v in texts.items()}

    def render(
        self,
        kind: str,
        params: Mapping[str, object],
        lang: Lang | str = Lang.ZH,
        *,
        signature: str | None = None,
    ) -> RenderedMessage:
        """The message ``kind`` in ``lang`` with ``params`` written in.

        ``signature`` replaces the language file's (``""`` for none). Raises
        :class:`MissingPlaceholderError`, :class:`UnknownPlaceholderError` or
        :class:`ValueFormatError` (a float for money, text for a date, …).
        """
        template = self.get(kind, lang)
        missing = [name for name in template.params if params.get(name) is None]
        if missing:
            raise MissingPlaceholderError(str(kind), template.lang.value, missing)
        unknown = set(params) - set(template.params)
        if unknown:
            raise UnknownPlaceholderError(str(kind), unknown, template.params)
        fields = {
            name: format_value(
                type_, params[name], template.lang, what=f"{kind}: {name} ({type_.value})"
            )
            for name, type_ in template.params.items()
        }
        body = template.text.format(**fields)
        sign = template.signature if signature is None else signature
        return RenderedMessage(
            kind=str(kind),
            lang=template.lang,
            title=template.title.format(**fields),
            body=body,
            text=sign + body,
            fields=fields,
            labels=dict(template.labels),
        )


_DEFAULT: TemplateSet | None = None


def default_templates() -> TemplateSet:
    """The shipped templates (``prepaid/templates``), loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = TemplateSet.load()
    return _DEFAULT
