"""Secret references (``env:NAME`` or ``file:/path``) as used in config files.

Resolution needs the environment or a file, so it takes them as arguments;
the programs call it with ``os.environ`` and a file reader at the edge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

SECRET_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")


class SecretError(LookupError):
    def __init__(self, ref: str, message: str) -> None:
        super().__init__(f"{ref}: {message}")
        self.ref = ref


def resolve_secret(ref: str, *, environ: Mapping[str, str], read_text: Callable[[str], str]) -> str:
    """The secret behind ``ref``; raises SecretError naming the reference, never the value."""
    if not SECRET_REF.match(ref):
        raise SecretError(ref, "a secret reference is env:NAME or file:/path")
    scheme, _, target = ref.partition(":")
    if scheme == "env":
        if target not in environ:
            raise SecretError(ref, "environment variable is not set")
        return environ[target]
    try:
        return read_text(target).strip()
    except OSError as exc:
        raise SecretError(ref, f"cannot read file ({exc.strerror})") from None
