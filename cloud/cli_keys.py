"""``vgr cloud keygen``: create the platform's Ed25519 signing key pair."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def keygen(out_dir: Path, *, force: bool) -> int:
    from protocols.tokens import (
        generate_private_key,
        key_id,
        private_key_to_pem,
        public_key_to_pem,
    )

    key_path, pub_path = out_dir / "platform.key", out_dir / "platform.pub"
    if key_path.exists() and not force:
        print(f"{key_path} exists; refusing to overwrite a signing key (use --force)")
        return 1
    out_dir.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_key_to_pem(key))
    pub_path.write_bytes(public_key_to_pem(key.public_key()))
    print(f"wrote {key_path} (private, mode 600) and {pub_path}")
    print(f"key id: {key_id(key.public_key())}")
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser("keygen", help="create the platform Ed25519 signing key pair")
    p.add_argument("--out", type=Path, required=True, help="directory for platform.key/.pub")
    p.add_argument("--force", action="store_true", help="overwrite an existing key")
    p.set_defaults(func=lambda a: keygen(a.out, force=a.force))
