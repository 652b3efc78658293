"""Ed25519 signature verification (RFC 8032, section 5.1), in pure Python.

The tracker only ever *verifies* (tokens, policies and commands signed by the
platform), so it needs no C crypto library: this module is the whole of it,
written from the RFC's definitions. Signing stays in the cloud
(``protocols.tokens``, with ``cryptography``).

- Field: integers mod ``P = 2**255 - 19``; curve ``-x² + y² = 1 + d·x²·y²``.
- Points in extended homogeneous coordinates ``(X, Y, Z, T)`` with
  ``x = X/Z``, ``y = Y/Z``, ``x·y = T/Z`` (RFC 8032 5.1.4 formulas).
- Decoding (5.1.3) is strict: ``y >= P``, a non-square ``x²`` and ``x = 0``
  with the sign bit set are all rejected. A public key of small order (``[8]A``
  is the identity) is refused as well: the RFC allows it, but anyone can forge
  signatures for it (``cryptography`` accepts such keys; we do not).
- Verification (5.1.7): ``S >= L`` is rejected (no malleable signatures);
  ``k = SHA-512(R ‖ A ‖ M) mod L``; the check is ``[S]B - [k]A == R``, computed
  as one joint double-and-add (Straus/Shamir) and compared with ``R``'s bytes.
  A non-canonical ``R`` can never equal a canonical encoding, so it fails too.
  This is the cofactorless equation, as OpenSSL (and so ``cryptography``)
  checks it; the RFC allows either.

Not constant time: verification handles only public data. A verification costs
about 5 ms on a small CPU core; see ``docs/edge-agent.md``.
"""

from __future__ import annotations

import hashlib
from typing import TypeAlias

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493  # order of the base point
D = -121665 * pow(121666, P - 2, P) % P
_D2 = 2 * D % P
_SQRT_M1 = pow(2, (P - 1) // 4, P)  # a square root of -1

Point: TypeAlias = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)
_IDENTITY: Point = (0, 1, 1, 0)


def _add(p: Point, q: Point) -> Point:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * _D2 * t2 % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = b - a, dd - c, dd + c, b + a
    return e * f % P, g * h % P, f * g % P, e * h % P


def _double(p: Point) -> Point:
    x1, y1, z1, _ = p
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1) % P
    g = a - b
    f = c + g
    return e * f % P, g * h % P, f * g % P, e * h % P


def _negate(p: Point) -> Point:
    x, y, z, t = p
    return -x % P, y, z, -t % P


def _encode(p: Point) -> bytes:
    x, y, z, _ = p
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _recover_x(y: int, sign: int) -> int | None:
    """The x of the curve point with this y and sign bit, or None (RFC 8032 5.1.3)."""
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    vxx = v * x * x % P
    if vxx == (-u) % P:
        x = x * _SQRT_M1 % P
    elif vxx != u:
        return None  # u/v is not a square: no point has this y
    if x == 0 and sign:
        return None
    return P - x if x & 1 != sign else x


def decode_point(data: bytes) -> Point:
    """A point from its 32-byte encoding; ``ValueError`` for anything non-canonical."""
    if len(data) != 32:
        raise ValueError("a point encoding is 32 bytes")
    n = int.from_bytes(data, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    if y >= P:
        raise ValueError("non-canonical point encoding (y >= p)")
    x = _recover_x(y, sign)
    if x is None:
        raise ValueError("not a point on the curve")
    return x, y, 1, x * y % P


_B_Y = 4 * pow(5, P - 2, P) % P
_B_X = _recover_x(_B_Y, 0)
assert _B_X is not None
BASE: Point = (_B_X, _B_Y, 1, _B_X * _B_Y % P)


def _double_scalar_mult(a: int, p: Point, b: int, q: Point) -> Point:
    """``[a]P + [b]Q`` by one joint double-and-add over the bits of both scalars."""
    table = (_IDENTITY, p, q, _add(p, q))
    acc = _IDENTITY
    for i in range(max(a.bit_length(), b.bit_length()) - 1, -1, -1):
        acc = _double(acc)
        pick = (a >> i & 1) | (b >> i & 1) << 1
        if pick:
            acc = _add(acc, table[pick])
    return acc


def _is_small_order(p: Point) -> bool:
    """``[8]P`` is the identity: such a key verifies forged signatures, so it is refused."""
    for _ in range(3):
        p = _double(p)
    x, y, z, _ = p
    return x % P == 0 and (y - z) % P == 0


class VerifyKey:
    """An Ed25519 public key, decoded once; :meth:`verify` checks signatures with it."""

    __slots__ = ("_neg_a", "_raw")

    def __init__(self, raw: bytes) -> None:
        """``raw`` is the 32-byte public key (RFC 8032 encoding); ``ValueError`` if invalid."""
        self._raw = bytes(raw)
        point = decode_point(self._raw)
        if _is_small_order(point):
            raise ValueError("small-order public key (anyone could sign for it)")
        self._neg_a = _negate(point)

    def public_bytes_raw(self) -> bytes:
        """The 32-byte encoding (the same method name as ``cryptography``'s keys)."""
        return self._raw

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey({self._raw.hex()})"

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``message``; never raises."""
        if len(signature) != 64:
            return False
        r, s = signature[:32], int.from_bytes(signature[32:], "little")
        if s >= L:
            return False
        k = int.from_bytes(hashlib.sha512(r + self._raw + message).digest(), "little") % L
        return _encode(_double_scalar_mult(s, BASE, k, self._neg_a)) == r


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """One-off check; False also for an invalid public key encoding."""
    try:
        key = VerifyKey(public_key)
    except ValueError:
        return False
    return key.verify(signature, message)
