"""Settings as msgspec Structs, checked key by key so that *every* problem is reported at once.

``msgspec.convert`` stops at the first error; a config check should list them
all. :func:`convert_settings` walks the Struct tree (``msgspec.structs.fields``)
beside the document: unknown keys, missing required keys and each value that
does not convert (types and ``msgspec.Meta`` bounds) become one
``key.path: problem`` line each, raised together as
:class:`~protocols.configfile.SettingsError`. When there are none it
converts the whole document once, which also runs any ``__post_init__``.

Conventions for the Structs: ``forbid_unknown_fields=True``; ``pathlib.Path``
fields take strings; a ``Meta(description=...)`` on a constrained type is the
problem text when a value breaks it (``must be <description>``), so secrets
and odd regexes never show up in messages. Values are never echoed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import msgspec

from protocols.configfile import SettingsError

_S = TypeVar("_S", bound=msgspec.Struct)
UNKNOWN_KEY = "unknown key (not a setting; check the spelling)"
MISSING_KEY = "required key is missing"


def dec_hook(kind: type, value: object) -> object:
    """Custom types in settings: ``Path`` from a string."""
    if kind is Path:
        if isinstance(value, str) and value:
            return Path(value)
        raise ValueError("expected a path (a non-empty string)")
    raise ValueError(f"unsupported setting type {kind!r}")  # pragma: no cover - a model bug


def enc_hook(value: object) -> object:
    """For ``msgspec.to_builtins`` of settings: ``Path`` as its string."""
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")  # pragma: no cover


def convert_settings(doc: Mapping[str, Any], kind: type[_S]) -> _S:
    """``doc`` as a ``kind``; SettingsError listing every bad key otherwise."""
    problems = list(_problems(doc, kind, ""))
    if problems:
        raise SettingsError(problems)
    try:
        return msgspec.convert(doc, kind, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:  # a cross-field check (__post_init__)
        path, message = _split(str(exc))
        raise SettingsError([f"{path or '<root>'}: {message}"]) from None


def _struct_of(annotation: Any) -> type[msgspec.Struct] | None:
    """The Struct class of a field typed ``SomeStruct`` or ``SomeStruct | None``."""
    candidates = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    for candidate in (annotation, *candidates):
        if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
            return candidate
    return None


def _problems(value: object, kind: type[msgspec.Struct], prefix: str) -> Iterator[str]:
    if not isinstance(value, Mapping):
        yield f"{prefix.rstrip('.') or '<root>'}: must be a table"
        return
    fields = {info.encode_name: info for info in msgspec.structs.fields(kind)}
    for key in value:
        if key not in fields:
            yield f"{prefix}{key}: {UNKNOWN_KEY}"
    for key, info in fields.items():
        if key not in value:
            if info.required:
                yield f"{prefix}{key}: {MISSING_KEY}"
            continue
        sub = _struct_of(info.type)
        if sub is not None and value[key] is not None:
            yield from _problems(value[key], sub, f"{prefix}{key}.")
            continue
        try:
            msgspec.convert(value[key], info.type, dec_hook=dec_hook)
        except msgspec.ValidationError as exc:
            path, message = _split(str(exc))
            yield f"{prefix}{key}{path}: {_friendly(info.type, message)}"


def _split(text: str) -> tuple[str, str]:
    """msgspec's ``Expected ... - at `$.a[0]` `` as (``.a[0]``, ``expected ...``)."""
    message, sep, where = text.rpartition(" - at `$")
    if not sep:
        message, where = text, ""
    message = message[:1].lower() + message[1:]
    return where.rstrip("`"), message


def _friendly(annotation: Any, message: str) -> str:
    """A field's own description of what it takes, or the allowed values of a Literal."""
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    for member in (annotation, *members):
        if get_origin(member) is Annotated:
            for meta in member.__metadata__:
                if isinstance(meta, msgspec.Meta) and meta.description:
                    return f"must be {meta.description}"
        if get_origin(member) is Literal:
            return "must be one of " + ", ".join(str(v) for v in get_args(member))
    return message
