"""The declared access policy: every route has one, and it is the one we mean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloud.api.app import build_app, route_specs
from cloud.api.policy import PEOPLE, ROLES, RoutePolicy, Routes, Scope, needs_csrf, role_table
from cloud.api.state import POLICIES

DOCS = Path(__file__).resolve().parents[3] / "docs"

# The intended matrix, written out by hand: a change to a route's roles must change this too.
EXPECTED = {
    ("DELETE", "/v1/integration-keys/{id}"): (("admin",), "tenant"),
    ("DELETE", "/v1/pois/{id}"): (("admin", "analyst"), "tenant"),
    ("DELETE", "/v1/webhooks/endpoints/{id}"): (("admin", "integration"), "tenant"),
    ("GET", "/"): ((), "public"),
    ("GET", "/cockpit"): ((), "public"),
    ("GET", "/metrics"): ((), "public"),
    ("GET", "/openapi.json"): ((), "public"),
    ("GET", "/static/{path:.+}"): ((), "public"),
    ("GET", "/v1/alerts"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/audit"): (("admin",), "tenant"),
    ("GET", "/v1/auth/me"): (("admin", "analyst", "installer", "recovery"), "self"),
    ("GET", "/v1/cases"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/cases/{id}"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/cockpit"): (("admin", "analyst"), "tenant"),
    ("GET", "/v1/devices"): (("admin", "analyst", "installer"), "tenant"),
    ("GET", "/v1/devices/{id}"): (("admin", "analyst", "installer"), "tenant"),
    ("GET", "/v1/fleet/positions"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/integration-keys"): (("admin",), "tenant"),
    ("GET", "/v1/live"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/loans"): (("admin", "analyst", "integration"), "tenant"),
    ("GET", "/v1/loans/{contract_id}"): (("admin", "analyst", "integration"), "tenant"),
    ("GET", "/v1/loans/{contract_id}/risk"): (("integration",), "tenant"),
    ("GET", "/v1/pois"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/pois/candidates"): (("admin", "analyst"), "tenant"),
    ("GET", "/v1/policies"): (("admin", "analyst"), "tenant"),
    ("GET", "/v1/policies/{id}"): (("admin", "analyst"), "tenant"),
    ("GET", "/v1/recovery/queue"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/regions"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/regions/basemap"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/regions/{adcode}"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/tenant"): (("admin", "analyst"), "tenant"),
    ("GET", "/v1/users"): (("admin",), "tenant"),
    ("GET", "/v1/users/{id}"): (("admin",), "tenant"),
    ("GET", "/v1/vehicles"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/vehicles/{id}"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/vehicles/{id}/commands"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/vehicles/{id}/places"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/vehicles/{id}/policy"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/vehicles/{id}/position"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/vehicles/{id}/track"): (("admin", "analyst", "recovery"), "tenant"),
    ("GET", "/v1/webhooks/deliveries"): (("admin", "integration"), "tenant"),
    ("GET", "/v1/webhooks/deliveries/{id}"): (("admin", "integration"), "tenant"),
    ("GET", "/v1/webhooks/endpoints"): (("admin", "integration"), "tenant"),
    ("GET", "/v1/webhooks/endpoints/{id}"): (("admin", "integration"), "tenant"),
    ("PATCH", "/v1/tenant"): (("admin",), "tenant"),
    ("PATCH", "/v1/users/{id}"): (("admin",), "tenant"),
    ("PATCH", "/v1/webhooks/endpoints/{id}"): (("admin", "integration"), "tenant"),
    ("POST", "/v1/alerts/{id}/ack"): (("admin", "analyst", "recovery"), "tenant"),
    ("POST", "/v1/alerts/{id}/resolve"): (("admin", "analyst"), "tenant"),
    ("POST", "/v1/auth/login"): ((), "public"),
    ("POST", "/v1/auth/logout"): (("admin", "analyst", "installer", "recovery"), "self"),
    ("POST", "/v1/cases"): (("admin", "analyst"), "tenant"),
    ("POST", "/v1/cases/{id}/assign"): (("admin", "analyst"), "tenant"),
    ("POST", "/v1/cases/{id}/transition"): (("admin", "analyst", "recovery"), "tenant"),
    ("POST", "/v1/integration-keys"): (("admin",), "tenant"),
    ("POST", "/v1/pois"): (("admin", "analyst"), "tenant"),
    ("POST", "/v1/pois/candidates/{id}/confirm"): (("admin", "analyst"), "tenant"),
    ("POST", "/v1/users"): (("admin",), "tenant"),
    ("POST", "/v1/vehicles/{id}/chase"): (("admin", "recovery"), "tenant"),
    ("POST", "/v1/webhooks/endpoints"): (("admin", "integration"), "tenant"),
    ("POST", "/v1/webhooks/endpoints/{id}/rotate-secret"): (("admin", "integration"), "tenant"),
    ("POST", "/v1/webhooks/messages/{id}/replay"): (("admin", "integration"), "tenant"),
    ("PUT", "/v1/loans/{contract_id}"): (("admin", "integration"), "tenant"),
}


def test_every_registered_route_has_declared_roles() -> None:
    app = build_app("postgresql://unused")  # no connection until start-up
    policies = app[POLICIES]
    routes = list(app.router.routes())
    assert routes
    for route in routes:
        policy = policies.get(route)
        where = f"{route.method} {route.resource.canonical if route.resource else '?'}"
        assert policy is not None, f"{where} has no access policy"
        assert policy.roles or policy.scope is Scope.PUBLIC, f"{where} declares no roles"
        assert policy.roles <= ROLES


def test_the_matrix_is_the_intended_one() -> None:
    table = {(m, p): (roles, scope) for m, p, roles, scope in role_table(route_specs())}
    assert table == EXPECTED


def test_policy_rules() -> None:
    assert "integration" not in PEOPLE
    assert PEOPLE | {"integration"} == ROLES
    routes = [s for s in route_specs() if s.policy.scope is not Scope.PUBLIC]
    installer = [s.path for s in routes if s.policy.allows("installer")]
    # provisioning lives in the registry; installers see devices' health, never positions
    assert sorted(installer) == [
        "/v1/auth/logout",
        "/v1/auth/me",
        "/v1/devices",
        "/v1/devices/{id}",
    ]
    integration = {s.path for s in routes if s.policy.allows("integration")}
    assert {p for p in integration if not p.startswith("/v1/webhooks/")} == {
        "/v1/loans",
        "/v1/loans/{contract_id}",
        "/v1/loans/{contract_id}/risk",
    }  # the lending core: its loans, their risk, and its webhook endpoints; no positions
    assert [s.path for s in routes if s.policy.allows("recovery")
            and s.method == "POST" and "resolve" in s.path] == []  # fmt: skip


@pytest.mark.parametrize(
    ("roles", "scope"),
    [
        (set(), Scope.TENANT),
        ({"admin"}, Scope.PUBLIC),
        ({"root"}, Scope.TENANT),
        (set(), Scope.SELF),
    ],
)
def test_bad_declarations_fail_at_import(roles: set[str], scope: Scope) -> None:
    with pytest.raises(ValueError, match="role"):
        RoutePolicy(frozenset(roles), scope)


def test_unknown_methods_are_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        Routes()("HEAD", "/x", roles={"admin"})


def test_csrf_applies_to_cookie_sessions_on_unsafe_methods_only() -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert needs_csrf(method, "session")
        assert not needs_csrf(method, "key")
    assert not needs_csrf("GET", "session")


def test_docs_list_every_route_with_its_roles() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("api*.md")))
    for method, path, roles, _scope in role_table(route_specs()):
        rows = [ln for ln in text.splitlines() if ln.startswith(f"| `{method} {path}` |")]
        line = rows[0] if rows else None
        assert line is not None, f"docs/api*.md do not list {method} {path}"
        roles_cell = line.split("|")[2]  # | `METHOD path` | roles | scope |
        listed = set(re.findall(r"\b(admin|analyst|recovery|installer|integration)\b", roles_cell))
        assert listed == set(roles), f"docs/api*.md roles for {method} {path}"
