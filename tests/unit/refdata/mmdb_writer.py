"""A minimal MaxMind DB (format 2.0) writer, enough to test the reader path with a real file.

IPv4 only, 24-bit records, non-overlapping networks, data values: str, int
(unsigned), bool, list, dict. Layout: search tree, 16 zero bytes, data
section, ``\\xab\\xcd\\xefMaxMind.com``, metadata map. A record below
``node_count`` is a node, equal to it is "no data", above it points into the
data section at ``record - node_count - 16``.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path
from typing import Any

_MARKER = b"\xab\xcd\xefMaxMind.com"


def _control(type_num: int, size: int) -> bytes:
    if size < 29:
        head, extra = size, b""
    elif size < 285:
        head, extra = 29, bytes([size - 29])
    elif size < 65821:
        head, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        head, extra = 31, (size - 65821).to_bytes(3, "big")
    if type_num <= 7:
        return bytes([(type_num << 5) | head]) + extra
    return bytes([head, type_num - 7]) + extra  # extended type: 0 in the top bits


def _uint(type_num: int, value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return _control(type_num, len(raw)) + raw


def encode(value: Any) -> bytes:
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, str):
        raw = value.encode()
        return _control(2, len(raw)) + raw
    if isinstance(value, int):
        return _uint(6 if value < 2**32 else 9, value)
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, dict):
        body = b"".join(encode(str(k)) + encode(v) for k, v in value.items())
        return _control(7, len(value)) + body
    raise TypeError(type(value))


def write_mmdb(path: Path, networks: dict[str, dict[str, Any]], database_type: str) -> None:
    """Write ``{cidr: record}`` (IPv4, no network inside another) as a MaxMind DB file."""
    data = bytearray()
    leaves: list[tuple[str, int]] = []  # (bit path, data offset)
    for cidr, value in networks.items():
        net = ipaddress.IPv4Network(cidr)
        bits = format(int(net.network_address), "032b")[: net.prefixlen]
        leaves.append((bits, len(data)))
        data += encode(value)
    # Nodes of the binary trie: every proper prefix of a leaf path.
    prefixes = sorted(
        {bits[:i] for bits, _ in leaves for i in range(len(bits))}, key=lambda p: (len(p), p)
    )
    number = {p: i for i, p in enumerate(prefixes)}
    node_count = len(prefixes)
    leaf_at = dict(leaves)
    tree = bytearray()
    for prefix in prefixes:
        for bit in "01":
            child = prefix + bit
            if child in number:
                record = number[child]
            elif child in leaf_at:
                record = node_count + 16 + leaf_at[child]
            else:
                record = node_count  # no data
            tree += record.to_bytes(3, "big")
    metadata = {
        "node_count": node_count,
        "record_size": 24,
        "ip_version": 4,
        "database_type": database_type,
        "languages": ["en", "zh-CN"],
        "binary_format_major_version": 2,
        "binary_format_minor_version": 0,
        "build_epoch": 1_700_000_000,
        "description": {"en": "VGR test database"},
    }
    meta = b"".join(encode(k) + _meta_value(k, v) for k, v in metadata.items())
    path.write_bytes(
        bytes(tree) + b"\x00" * 16 + bytes(data) + _MARKER + _control(7, len(metadata)) + meta
    )


def _meta_value(key: str, value: Any) -> bytes:
    # libmaxminddb checks the metadata's integer types.
    if key in (
        "record_size",
        "ip_version",
        "binary_format_major_version",
        "binary_format_minor_version",
    ):
        return _uint(5, value)
    if key == "build_epoch":
        return _uint(9, value)
    return encode(value)
