"""Who may do what: every endpoint against every role, and the audit stream's record of every change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.audit import read_audit
from api.auth import GRANTS, Role
from config.settings import Settings
from tests.conftest import auth

CAMERA = "cam_000000000000"
ALERT = "0" * 32
# (method, path, the role it needs). Every endpoint of the registry, admin, audit, alerts and incidents.
TABLE: list[tuple[str, str, Role]] = [
    ("GET", "/api/v1/cameras", Role.VIEWER),
    ("POST", "/api/v1/cameras", Role.OPERATOR),
    ("GET", "/api/v1/cameras/geojson", Role.VIEWER),
    ("GET", "/api/v1/cameras/export", Role.OPERATOR),
    ("POST", "/api/v1/cameras/import", Role.OPERATOR),
    ("GET", f"/api/v1/cameras/{CAMERA}", Role.VIEWER),
    ("PUT", f"/api/v1/cameras/{CAMERA}", Role.OPERATOR),
    ("PATCH", f"/api/v1/cameras/{CAMERA}", Role.OPERATOR),
    ("DELETE", f"/api/v1/cameras/{CAMERA}", Role.OPERATOR),
    ("POST", f"/api/v1/cameras/{CAMERA}/probe", Role.OPERATOR),
    ("GET", f"/api/v1/cameras/{CAMERA}/history", Role.ADMIN),
    ("GET", "/api/v1/tokens", Role.ADMIN),
    ("POST", "/api/v1/tokens", Role.ADMIN),
    ("DELETE", "/api/v1/tokens/nobody", Role.ADMIN),
    ("GET", "/api/v1/users", Role.ADMIN),
    ("POST", "/api/v1/users", Role.ADMIN),
    ("POST", "/api/v1/users/nobody/disable", Role.ADMIN),
    ("POST", "/api/v1/users/nobody/enable", Role.ADMIN),
    ("GET", "/api/v1/settings", Role.ADMIN),
    ("GET", "/api/v1/audit", Role.ADMIN),
    ("GET", "/api/v1/alerts", Role.VIEWER),
    ("GET", "/api/v1/alerts/feed", Role.VIEWER),
    ("GET", f"/api/v1/alerts/{ALERT}", Role.VIEWER),
    ("GET", f"/api/v1/alerts/{ALERT}/snapshot", Role.VIEWER),
    ("GET", f"/api/v1/alerts/{ALERT}/clip", Role.VIEWER),
    ("GET", "/api/v1/incidents", Role.CASE_SYSTEM),
]
COVERED_PREFIXES = (
    "/api/v1/cameras",
    "/api/v1/tokens",
    "/api/v1/users",
    "/api/v1/settings",
    "/api/v1/audit",
    "/api/v1/incidents",
)
OPEN = {("GET", "/healthz")}


@pytest.fixture
def client(settings: Settings, redis_url: str, rclient: redis.Redis) -> Iterator[TestClient]:
    with TestClient(create_app(settings, redis_url)) as http:
        yield http


def _template(path: str) -> str:
    return path.replace(CAMERA, "{camera_id}").replace(ALERT, "{alert_id}").replace("/nobody", "/{name}")


def test_the_table_covers_every_registry_admin_and_alert_endpoint(client: TestClient) -> None:
    routes = {(m.upper(), p) for p, ops in client.app.openapi()["paths"].items() for m in ops}  # type: ignore[attr-defined]
    tabled = {(m, _template(p)) for m, p, _ in TABLE}
    alert_routes = {r for r in routes if r[1].startswith("/api/v1/alerts")}
    mine = {r for r in routes if r[1].startswith(COVERED_PREFIXES)}
    # Alert endpoints added later by their owner only need to appear here to get the full matrix.
    assert mine - tabled == set()
    assert {r for r in alert_routes if r in tabled} >= {("GET", "/api/v1/alerts"), ("GET", "/api/v1/alerts/feed")}


@pytest.mark.parametrize(("method", "path", "needed"), TABLE, ids=[f"{m} {p}" for m, p, _ in TABLE])
def test_each_role_allowed_or_refused(
    client: TestClient, tokens: dict[Role, str], method: str, path: str, needed: Role
) -> None:
    anonymous = client.request(method, path)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert client.request(method, path, headers=auth("se_not-a-real-token")).status_code == 401
    for role, token in tokens.items():
        reply = client.request(method, path, headers=auth(token))
        if role in GRANTS[needed]:
            assert reply.status_code not in (401, 403), f"{role.value}: {reply.status_code} {reply.text}"
        else:
            assert reply.status_code == 403, f"{role.value} got {reply.status_code}"
            assert reply.json()["detail"] == f"role {role.value!r} may not do this: it needs {needed.value!r}"


def test_every_other_endpoint_needs_a_token_too(client: TestClient) -> None:
    for path, ops in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        for method in ops:
            if (method.upper(), path) in OPEN:
                continue
            concrete = path.replace("{camera_id}", CAMERA).replace("{alert_id}", ALERT).replace("{name}", "nobody")
            assert client.request(method, concrete).status_code == 401, f"{method.upper()} {path} is open"
    assert client.get("/healthz").status_code == 200


def test_a_revoked_token_is_refused_at_once(client: TestClient, tokens: dict[Role, str]) -> None:
    admin = auth(tokens[Role.ADMIN])
    created = client.post("/api/v1/tokens", json={"name": "wall-7", "role": "viewer"}, headers=admin)
    assert created.status_code == 201
    token = created.json()["token"]
    assert client.get("/api/v1/cameras", headers=auth(token)).status_code == 200
    assert client.delete("/api/v1/tokens/wall-7", headers=admin).status_code == 204
    assert client.get("/api/v1/cameras", headers=auth(token)).status_code == 401


def test_every_change_is_audited_with_who_what_before_and_after(
    client: TestClient, tokens: dict[Role, str], rclient: redis.Redis
) -> None:
    op, admin = auth(tokens[Role.OPERATOR]), auth(tokens[Role.ADMIN])
    body = {"name": "Gate", "stream_url": "rtsp://10.0.0.1/s", "location": {"lat": 1, "lon": 2}, "external_id": "G-1"}
    cam = client.post("/api/v1/cameras", json=body, headers=op).json()
    client.patch(f"/api/v1/cameras/{cam['id']}", json={"name": "Gate 2"}, headers=op)
    client.put(f"/api/v1/cameras/{cam['id']}", json={**body, "name": "Gate 3"}, headers=op)
    client.put(f"/api/v1/cameras/{cam['id']}", json={**body, "name": "Gate 3"}, headers=op)  # no change: no entry
    csv_body = b"external_id,name,lat,lon,stream_url\nG-2,Dock,1,2,rtsp://10.0.0.2/s\n"
    client.post("/api/v1/cameras/import", content=csv_body, headers={**op, "Content-Type": "text/csv"})
    client.delete(f"/api/v1/cameras/{cam['id']}", headers=op)
    client.post("/api/v1/tokens", json={"name": "case-1", "role": "case_system"}, headers=admin)
    client.delete("/api/v1/tokens/case-1", headers=admin)
    client.post("/api/v1/users/case-1/disable", headers=admin)
    # The fixture's own tokens (targets "test-...") were created first, from the command line.
    entries = [e for e in reversed(read_audit(rclient, 100, None)) if not e["target"].startswith("test-")]
    trail = [(e["actor"], e["action"]) for e in entries]
    assert trail == [
        ("test-operator", "camera.create"),
        ("test-operator", "camera.update"),
        ("test-operator", "camera.update"),
        ("test-operator", "camera.create"),
        ("test-operator", "camera.import"),
        ("test-operator", "camera.delete"),
        ("test-admin", "user.create"),
        ("test-admin", "token.create"),
        ("test-admin", "token.revoke"),
        ("test-admin", "user.disable"),
    ]
    patch = entries[[e["action"] for e in entries].index("camera.update")]
    assert (patch["before"]["name"], patch["after"]["name"], patch["target"]) == ("Gate", "Gate 2", cam["id"])
    assert all(isinstance(e["at"], float) for e in entries)
    history = client.get(f"/api/v1/cameras/{cam['id']}/history", headers=admin).json()
    assert [h["action"] for h in history] == ["camera.delete", "camera.update", "camera.update", "camera.create"]
    listed = client.get("/api/v1/audit", headers=admin).json()
    assert listed[0]["action"] == "user.disable"
