"""A client of the cloud's provisioning API, on the standard library (``urllib``).

Every request carries ``Authorization: Bearer <installer key>``. The API
answers errors as ``{"error": {"code", "message", "field"?}}``; they become
:class:`ApiError` with the server's code, so the installer sees exactly what
the cloud said. Anything that is not an answer from the API (no route, DNS,
TLS, timeout, a proxy's HTML page) is a :class:`NetworkError`.

The response bodies are decoded into the Structs below: the part of the
API's contract this tool relies on (the cloud's side is ``cloud/registry/schema.py``).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import msgspec

DEFAULT_TIMEOUT_S: Final = 30.0
MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024  # a signed policy is at most a few MB
_S = TypeVar("_S", bound=msgspec.Struct)

#: What the installer can do about an error code the API returns.
HINTS: Final[dict[str, str]] = {
    "unauthorized": "the installer key was refused: check --key-env / --key-file "
    "(keys are per installer and can be replaced by the administrator)",
    "invalid_imei": "re-read the IMEI on the tracker's label",
    "imei_registered_elsewhere": "this tracker belongs to another institution: "
    "do not install it; call support",
    "kind_mismatch": "the tracker was registered with the other --kind; use that one",
    "device_not_found": "the device is not registered for your institution",
    "device_revoked": "the device was revoked; a revoked tracker cannot be provisioned again",
    "device_not_bound": "bind the device to a vehicle and a contract first",
    "invalid_vin": "re-read the VIN (17 characters, no I, O or Q)",
    "invalid_contract_id": "check the contract id with the lender",
    "loan_vehicle_mismatch": "this contract already secures another vehicle: check the "
    "contract id and VIN with the lender",
    "invalid_area": "an allowed area or forbidden zone is unusable: ask the lender to fix it",
    "validation_failed": "a value was refused (see the field)",
    "broker_unavailable": "the cloud could not update the MQTT broker; nothing changed: "
    "try again in a minute",
    "database_unavailable": "the cloud's database is unavailable; try again in a minute",
    "concurrent_update": "someone changed this device at the same time; run the command again",
    "payload_too_large": "the request is too large (too many areas?)",
}


class ApiError(Exception):
    """The provisioning API refused a request; ``code`` is the server's stable code."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.field = status, code, message, field

    def describe(self) -> str:
        where = f" (field: {self.field})" if self.field else ""
        text = f"the cloud said [{self.status} {self.code}] {self.message}{where}"
        hint = HINTS.get(self.code)
        return f"{text}\n  what to do: {hint}" if hint else text


class NetworkError(Exception):
    """No usable answer from the API (unreachable, TLS, timeout, not the API)."""


class MqttEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    password: str
    client_id: str
    host: str
    port: int | None = None
    tls_port: int | None = None


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    mqtt: MqttEndpoint
    token: str
    policy: str
    platform_public_key_pem: str
    platform_key_id: str | None = None
    ca_pem: str | None = None
    token_id: str | None = None
    policy_id: str | None = None
    policy_version: int | None = None


class Device(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    tenant: str
    kind: str
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class ProvisionApi:
    """``base_url`` is the API's root (``https://cloud.example``); ``key`` never leaves here."""

    base_url: str
    key: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    cafile: str | None = None  # extra CA for a private API certificate

    def __repr__(self) -> str:  # never show the key, even in a traceback
        return f"ProvisionApi({self.base_url!r})"

    def register(self, imei: str, kind: str) -> Device:
        body = self._call("POST", "/v1/provision/devices", {"imei": imei, "kind": kind})
        return _decode(body, Device)

    def bind(self, imei: str, binding: dict[str, Any]) -> Device:
        body = self._call("POST", f"/v1/provision/devices/{imei}/bind", binding)
        return _decode(body, Device)

    def credentials(self, imei: str) -> Credentials:
        body = self._call("POST", f"/v1/provision/devices/{imei}/credentials", {})
        return _decode(body, Credentials)

    def _call(self, method: str, path: str, payload: object) -> bytes:
        url = self.base_url.rstrip("/") + path
        request = urllib.request.Request(  # noqa: S310 - the scheme was checked (inputs.py)
            url,
            data=json.dumps(payload).encode(),
            method=method,
            headers={
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "vgr-edge-provision",
            },
        )
        context = (
            ssl.create_default_context(cafile=self.cafile) if url.startswith("https") else None
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self.timeout_s, context=context
            ) as resp:
                return bytes(resp.read(MAX_RESPONSE_BYTES))
        except urllib.error.HTTPError as exc:
            raw = exc.read(MAX_RESPONSE_BYTES)
            raise _error_of(exc.code, raw) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                msg = f"{self.base_url}: TLS certificate not trusted ({reason.verify_message})"
            else:
                msg = f"cannot reach {self.base_url}: {reason}"
            raise NetworkError(msg) from None
        except TimeoutError:
            msg = f"{self.base_url} did not answer within {self.timeout_s:.0f} s"
            raise NetworkError(msg) from None
        except OSError as exc:
            raise NetworkError(f"{self.base_url}: {exc}") from None


class _ErrorBody(msgspec.Struct, frozen=True):
    code: str
    message: str
    field: str | None = None


class _ErrorOut(msgspec.Struct, frozen=True):
    error: _ErrorBody


def _error_of(status: int, raw: bytes) -> Exception:
    try:
        err = msgspec.json.decode(raw, type=_ErrorOut).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        snippet = raw[:120].decode("utf-8", "replace").strip() or "(empty body)"
        return NetworkError(f"HTTP {status} that is not from the provisioning API: {snippet}")
    return ApiError(status, err.code, err.message, err.field)


def _decode(raw: bytes, kind: type[_S]) -> _S:
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        msg = f"the API's answer is not what this tool understands ({exc})"
        raise NetworkError(msg) from None
