"""The configuration file convention shared by every VGR program (pure: no I/O).

A program's settings are one TOML document validated by that program's typed
model: pydantic in the cloud, msgspec Structs on the tracker
(:mod:`protocols.structconfig`, light enough for the agent). Environment
variables override single keys: ``VGR_<KIND>__A__B=value``
sets ``[a] b = value`` (the double underscore separates levels). Values are
parsed as TOML scalars when they look like one (``42``, ``true``, ``"x"``,
``[1, 2]``), otherwise taken as plain strings.

Secrets never sit in the file itself: a secret field holds a reference,
``env:NAME`` or ``file:/path``, resolved by the program when it needs it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

_T = TypeVar("_T")

ENV_PREFIX = "VGR_"
LEVEL_SEPARATOR = "__"


class ConfigFileError(ValueError):
    """The file is not TOML, or an override cannot be applied. ``key`` names where."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def parse_toml(text: str, *, source: str = "<config>") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(source, f"not valid TOML: {exc}") from None


def _scalar(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_env_overrides(
    doc: dict[str, Any], environ: Mapping[str, str], kind: str
) -> tuple[dict[str, Any], list[str]]:
    """Return a copy of ``doc`` with ``VGR_<KIND>__…`` variables applied, and the keys set."""
    prefix = f"{ENV_PREFIX}{kind.upper()}{LEVEL_SEPARATOR}"
    out: dict[str, Any] = _deep_copy(doc)
    applied: list[str] = []
    for name in sorted(environ):
        if not name.startswith(prefix):
            continue
        path = [p.lower() for p in name[len(prefix) :].split(LEVEL_SEPARATOR)]
        if not all(path):
            raise ConfigFileError(name, "empty level in environment override")
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigFileError(".".join(path), f"{name} descends into a non-table value")
            node = child
        node[path[-1]] = _scalar(environ[name])
        applied.append(".".join(path))
    return out, applied


def _deep_copy(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in doc.items()}


def format_validation_errors(errors: list[Mapping[str, Any]]) -> list[str]:
    """``key.path: message`` lines from pydantic's ``ValidationError.errors()`` output."""
    lines = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
        if err.get("type") == "extra_forbidden":
            msg = "unknown key (not a setting; check the spelling)"
        elif err.get("type") == "missing":
            msg = "required key is missing"
        else:
            msg = str(err.get("msg", "invalid value"))
        lines.append(f"{loc}: {msg}")
    return lines


class SettingsError(ValueError):
    """Raised by a program's validator: one ``key.path: problem`` line per problem.

    For models that are not pydantic (the edge's msgspec Structs, see
    :mod:`protocols.structconfig`); :func:`validate_document` turns it into a
    :class:`ConfigError` like a pydantic ``ValidationError``.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ConfigError(ValueError):
    """A configuration is unusable; ``problems`` holds one ``key: message`` line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def validate_document(
    text: str,
    *,
    environ: Mapping[str, str],
    kind: str,
    source: str,
    validate: Callable[[dict[str, Any]], _T],
) -> _T:
    """Parse TOML, apply ``VGR_<KIND>__`` overrides and run the program's model on it.

    ``validate`` is a pydantic model's ``model_validate`` (its ValidationError, a
    ValueError with ``errors()``, becomes a ConfigError listing every bad key)
    or any function raising :class:`SettingsError` (the edge's msgspec model).
    """
    try:
        doc, _ = apply_env_overrides(parse_toml(text, source=source), environ, kind)
    except ConfigFileError as exc:
        raise ConfigError(source, [str(exc)]) from None
    try:
        return validate(doc)
    except SettingsError as exc:
        raise ConfigError(source, exc.problems) from None
    except ValueError as exc:
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise
        raise ConfigError(source, format_validation_errors(list(errors()))) from None
