"""The OpenAPI document: valid OpenAPI 3.1, and exactly the application's routes and rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from openapi_spec_validator import validate

from cloud.api.app import build_app, route_specs
from cloud.api.cases import allowed_targets
from cloud.api.commands import command_status
from cloud.api.cursor import PageError
from cloud.api.openapi import OPENAPI_BYTES, document, error_codes, openapi_path, status_of
from cloud.api.policy import UNSAFE_METHODS, Scope
from cloud.api.queue import decode_key, encode_key, order_key, runs
from cloud.recovery.ranking import Candidate, rank


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    app = build_app("postgresql://unused")  # no connection until start-up
    served: dict[str, Any] = msgspec.json.decode(app[OPENAPI_BYTES])
    return served


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m.upper(), p): op for p, ops in doc["paths"].items() for m, op in ops.items()}


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises with the offending path when it is not


def test_it_lists_exactly_the_routes_of_the_application(doc: dict[str, Any]) -> None:
    app = build_app("postgresql://unused")
    served = set()
    for route in app.router.routes():
        assert route.resource is not None
        served.add((route.method, openapi_path(route.resource.canonical)))
    documented = set(operations(doc))
    assert documented - served == set(), "documented but not served"
    assert served - documented == set(), "served but not documented"
    assert documented >= {("GET", "/openapi.json"), ("POST", "/v1/cases/{id}/transition")}


def test_every_error_code_has_its_http_status() -> None:
    unknown = sorted({(s.method, s.path, code) for s in route_specs() for code in error_codes(s)
                      if status_of(code) == "4XX"})  # fmt: skip
    assert unknown == [], "add these codes to cloud.api.openapi.ERROR_STATUS"


def test_roles_and_security_follow_each_routes_policy(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    for spec in route_specs():
        op = ops[(spec.method, openapi_path(spec.path))]
        assert op["x-roles"] == sorted(spec.policy.roles)
        schemes = {name for alternative in op["security"] for name in alternative}
        if spec.policy.scope is Scope.PUBLIC:
            assert op["security"] == []
            assert "unauthorized" not in op["responses"].get("401", {}).get("description", "")
            continue
        assert ("integrationKey" in schemes) == ("integration" in spec.policy.roles)
        people = bool(spec.policy.roles - {"integration"})
        assert ("session" in schemes) == people
        if people and spec.method in UNSAFE_METHODS:
            assert {"session": [], "csrf": []} in op["security"], (spec.method, spec.path)
            assert "csrf_failed" in op["responses"]["403"]["description"]
        assert "unauthorized" in op["responses"]["401"]["description"]
        assert "forbidden" in op["responses"]["403"]["description"]


def test_parameters_and_bodies_come_from_the_declared_structs(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    alerts = {p["name"]: p for p in ops[("GET", "/v1/alerts")]["parameters"]}
    assert set(alerts) == {"limit", "cursor", "status", "rule"}
    assert alerts["limit"]["in"] == "query"
    assert (alerts["limit"]["schema"]["minimum"], alerts["limit"]["schema"]["maximum"]) == (1, 200)
    assert alerts["status"]["required"] is False
    status_enum = alerts["status"]["schema"]["anyOf"][0]["enum"]
    assert sorted(status_enum) == ["acknowledged", "open", "resolved"]

    transition = ops[("POST", "/v1/cases/{id}/transition")]
    assert [(p["name"], p["in"], p["required"]) for p in transition["parameters"]] == [
        ("id", "path", True)
    ]
    body = transition["requestBody"]
    assert body["required"] is True
    ref = body["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert schema["required"] == ["to"]
    assert schema["additionalProperties"] is False
    assert "closed" in schema["properties"]["to"]["enum"]
    assert transition["responses"]["409"]["description"] == "error: invalid_transition, no_devices"
    assert "404" in transition["responses"]

    ack = ops[("POST", "/v1/alerts/{id}/ack")]
    assert ack["requestBody"]["required"] is False  # the note is optional, so is the body
    created = ops[("POST", "/v1/cases")]["responses"]
    assert "201" in created
    for (method, path), op in ops.items():
        declared = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
        assert declared == [part[1:-1] for part in path.split("/") if part.startswith("{")], path
        if method == "GET":
            assert "requestBody" not in op, path


def test_the_document_is_stable() -> None:
    specs = list(route_specs())
    assert document(specs) == document(specs)


# ---------------------------------------------------------------- pure helpers of the routes


def test_transition_targets_follow_the_workflow() -> None:
    assert allowed_targets("open") == ["closed"]  # assign has its own route
    assert allowed_targets("assigned") == ["chasing", "located", "closed"]
    assert allowed_targets("chasing") == ["chasing", "assigned", "located", "failed", "closed"]
    assert allowed_targets("located") == ["chasing", "recovered", "failed", "closed"]
    assert allowed_targets("recovered") == ["closed"]
    assert allowed_targets("closed") == []


def test_command_status() -> None:
    now = datetime(2025, 3, 4, 8, 0, tzinfo=UTC)
    later, earlier = now + timedelta(hours=1), now - timedelta(seconds=1)
    assert command_status(None, None, None, later, now) == "pending"
    assert command_status(None, "broker unreachable", None, later, now) == "not_published"
    assert command_status(now, "Success", None, later, now) == "published"
    assert command_status(now, "Success", None, earlier, now) == "expired"
    assert command_status(now, "Success", True, earlier, now) == "acknowledged"
    assert command_status(now, "Success", False, later, now) == "refused"


def test_the_queue_cursor_follows_the_ranking_order() -> None:
    candidates = [
        Candidate(1, "current", Decimal("100000"), 80.0),
        Candidate(2, "default", None, 80.0),
        Candidate(3, "overdue", Decimal("5000.5"), 10.0),
        Candidate(4, "current", Decimal("100000"), 80.0),
        Candidate(5, "current", None, 0.0),
        Candidate(6, "current", Decimal("0.1"), 0.0),
    ]
    ranked = rank(candidates)
    assert sorted(ranked, key=order_key) == ranked
    keys = [order_key(r) for r in ranked]
    assert len(set(keys)) == len(keys)
    for key in keys:
        assert decode_key(encode_key(key)) == key  # exact, floats included
    # every car after the cursor, none before it: the next page starts right after it
    third = decode_key(encode_key(keys[2]))
    assert [r.candidate.vehicle_id for r in ranked if order_key(r) > third] == [
        r.candidate.vehicle_id for r in ranked[3:]
    ]
    with pytest.raises(PageError):
        decode_key("not-a-cursor")


def test_runs_of_consecutive_positions() -> None:
    assert runs([]) == []
    assert runs([0, 1, 2, 5, 7, 8]) == [(0, 3), (5, 1), (7, 2)]
