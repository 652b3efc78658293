"""The OpenAPI 3.1 document of the API, built from the routes' own declarations.

Every route is declared once, in its module's :class:`~cloud.api.policy.Routes`
table, with its roles, its query and body Structs and its answer type; the
handlers decode requests with those very Structs (``query_params``,
``json_body``), so the document says what is enforced. msgspec writes JSON
Schema 2020-12, the dialect OpenAPI 3.1 uses, so the Structs' schemas go into
``components.schemas`` as they are.

Per operation: path parameters, query parameters (one per Struct field, with
its bounds), the request body, the success answer, the JSON error shape for
every 4xx the route can give (the codes it declares, plus the ones every
route of its kind can give), security (session cookie, with the CSRF header
on unsafe methods, and/or the integration key) and ``x-roles``. The document
is built once, when the application is built, and served by the public
``GET /openapi.json``. :func:`document` is pure.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Final

import msgspec
from aiohttp import web

from cloud.api.policy import PEOPLE, UNSAFE_METHODS, Routes, RouteSpec, Scope

OPENAPI_BYTES: Final = web.AppKey("api_openapi_bytes", bytes)
routes = Routes()
TITLE = "VGR API"
VERSION = "1"
REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")

# The HTTP status of every stable error code (docs/api.md); codes ending in
# ``_not_found`` are 404. A code missing here is listed under ``4XX`` and the
# unit test names it.
ERROR_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "invalid_parameter": 400,
    "invalid_cursor": 400,
    "invalid_url": 400,
    "invalid_assignee": 400,
    "invalid_contract": 400,
    "invalid_username": 400,
    "invalid_role": 400,
    "weak_password": 400,
    "vin_required": 400,
    "websocket_required": 400,
    "unauthorized": 401,
    "invalid_credentials": 401,
    "forbidden": 403,
    "csrf_failed": 403,
    "origin_refused": 403,
    "invalid_transition": 409,
    "case_already_open": 409,
    "no_devices": 409,
    "never_delivered": 409,
    "user_exists": 409,
    "self_change": 409,
    "poi_exists": 409,
    "poi_is_global": 409,
    "not_confirmed": 409,
    "vin_mismatch": 409,
    "vehicle_not_registered": 409,
    "request_too_large": 413,
    "unsupported_media_type": 415,
    "too_many_attempts": 429,
    "internal": 500,
    "commands_unavailable": 503,
    "too_many_clients": 503,
}

SECURITY_SCHEMES: dict[str, Any] = {
    "session": {"type": "apiKey", "in": "cookie", "name": "vgr_session",
                "description": "the session cookie set by POST /v1/auth/login"},
    "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
             "description": "the session's csrf_token; cookie sessions send it on unsafe "
                            "methods"},
    "integrationKey": {"type": "http", "scheme": "bearer",
                       "description": "an integration key (vgr_…) of the lending core"},
}  # fmt: skip

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


def path_parameters(path: str) -> list[str]:
    """The names of ``{name}`` / ``{name:regex}`` parameters in an aiohttp path."""
    return _PARAM.findall(path)


def openapi_path(path: str) -> str:
    """The path with aiohttp's ``{name:regex}`` written ``{name}``."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def status_of(code: str) -> str:
    if code.endswith("_not_found"):
        return "404"
    status = ERROR_STATUS.get(code)
    return "4XX" if status is None else str(status)


def error_codes(spec: RouteSpec) -> list[str]:
    """Every error code the route can answer: declared ones and those of its kind."""
    codes: list[str] = []
    if spec.policy.scope is not Scope.PUBLIC:
        codes += ["unauthorized", "forbidden"]
        if spec.method in UNSAFE_METHODS and spec.policy.roles & PEOPLE:
            codes.append("csrf_failed")
    if spec.doc.query is not None:
        codes += ["invalid_parameter", "invalid_cursor"]
    if spec.doc.body is not None:
        codes += ["invalid_request", "request_too_large", "unsupported_media_type"]
    codes += spec.doc.errors
    return list(dict.fromkeys(codes))


def _security(spec: RouteSpec) -> list[dict[str, list[str]]]:
    if spec.policy.scope is Scope.PUBLIC:
        return []
    out: list[dict[str, list[str]]] = []
    if spec.policy.roles & PEOPLE:
        unsafe = spec.method in UNSAFE_METHODS
        out.append({"session": [], "csrf": []} if unsafe else {"session": []})
    if "integration" in spec.policy.roles:
        out.append({"integrationKey": []})
    return out


def _errors(spec: RouteSpec) -> dict[str, Any]:
    by_status: dict[str, list[str]] = defaultdict(list)
    for code in error_codes(spec):
        by_status[status_of(code)].append(code)
    out = {}
    for status, codes in sorted(by_status.items()):
        schema = {
            "allOf": [{"$ref": REF.format(name="Error")}],
            "properties": {"error": {"properties": {"code": {"enum": codes}}}},
        }
        out[status] = {"description": "error: " + ", ".join(codes),
                       "content": {"application/json": {"schema": schema}}}  # fmt: skip
    return out


def _body_required(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    ref = schema.get("$ref", "")
    target = components.get(ref.rsplit("/", 1)[-1], schema) if ref else schema
    return bool(target.get("required"))


def document(specs: Iterable[RouteSpec]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``specs`` (pure: the same specs give the same document)."""
    specs = list(specs)
    types: list[Any] = []
    for spec in specs:
        for typ in (spec.doc.query, spec.doc.body, spec.doc.response):
            if typ is not None and typ not in types:
                types.append(typ)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)

    def schema_of(typ: Any) -> dict[str, Any]:
        return dict(schemas[types.index(typ)])

    components = dict(components) | {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = defaultdict(dict)
    for spec in specs:
        op: dict[str, Any] = {
            "operationId": f"{spec.handler.__module__.rsplit('.', 1)[-1]}.{spec.handler.__name__}",
            "summary": spec.doc.summary,
            "tags": [spec.handler.__module__.rsplit(".", 1)[-1]],
        }
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in path_parameters(spec.path)
        ]
        if spec.doc.query is not None:
            query = components[schema_of(spec.doc.query)["$ref"].rsplit("/", 1)[-1]]
            required = set(query.get("required", ()))
            params += [
                {"name": name, "in": "query", "required": name in required, "schema": schema}
                for name, schema in query["properties"].items()
            ]
        if params:
            op["parameters"] = params
        if spec.doc.body is not None:
            body = schema_of(spec.doc.body)
            op["requestBody"] = {"required": _body_required(body, components),
                                 "content": {"application/json": {"schema": body}}}  # fmt: skip
        answer = {"type": "object"} if spec.doc.response is None else schema_of(spec.doc.response)
        op["responses"] = {
            str(spec.doc.status): {"description": spec.doc.summary or "success",
                                   "content": {"application/json": {"schema": answer}}},
            **_errors(spec),
        }  # fmt: skip
        op["security"] = _security(spec)
        op["x-roles"] = sorted(spec.policy.roles)
        op["x-scope"] = spec.policy.scope.value
        paths[openapi_path(spec.path)][spec.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "Vehicle-GPS risk control for car lenders. Errors are "
                                "{\"error\": {\"code\", \"message\"}} with stable codes."},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(components.items())),
                       "securitySchemes": SECURITY_SCHEMES},
    }  # fmt: skip


def install(app: web.Application, specs: Iterable[RouteSpec]) -> None:
    """Build the document once, for ``GET /openapi.json``."""
    app[OPENAPI_BYTES] = msgspec.json.encode(document(specs))


@routes("GET", "/openapi.json", scope=Scope.PUBLIC,
        summary="This API's OpenAPI 3.1 document")  # fmt: skip
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_BYTES], content_type="application/json")
