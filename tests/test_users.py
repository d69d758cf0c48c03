"""Users and token expiry: tokens belong to users, disabling a user refuses all its tokens, expired tokens are
refused with the time they expired; through the HTTP API as clients meet them, on a real Valkey."""

from __future__ import annotations

import hashlib
import time

import pytest
import redis
from fastapi.testclient import TestClient

from api.audit import read_audit
from api.auth import DEFAULT_LIFETIME_S, Role, TokenState, TokenStore, format_time, parse_duration
from api.users import AccountConflict, AccountError, NoSuchUser
from tests.conftest import auth


def test_durations() -> None:
    assert parse_duration("90d") == 90 * 86400
    assert parse_duration(" 12h ") == 12 * 3600
    assert parse_duration("2w") == 14 * 86400 and parse_duration("30m") == 1800
    assert parse_duration("never") == float("inf")
    for bad in ("", "90", "d", "1.5d", "-1d", "0d", "3651d", "90 days"):
        with pytest.raises(ValueError, match=f"expires_in {bad!r}"):
            parse_duration(bad)


def test_an_expired_token_is_refused_with_when_and_what_to_do(
    api: TestClient, rclient: redis.Redis, tokens: dict[Role, str]
) -> None:
    store = TokenStore(rclient)
    short = store.create("wall-short", Role.VIEWER, expires_in_s=0.2)
    assert api.get("/api/v1/cameras", headers=auth(short)).status_code == 200
    [info] = [t for t in store.list() if t.name == "wall-short"]
    assert info.expires_at is not None
    # The record outlives its expiry by a month, so the holder learns why it stopped working.
    ttl = rclient.ttl(f"sharpeyes:token:{hashlib.sha256(short.encode()).hexdigest()}")
    assert 29 * 86400 < int(ttl) <= 31 * 86400
    while time.time() < info.expires_at:
        time.sleep(0.05)
    reply = api.get("/api/v1/cameras", headers=auth(short))
    assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer"
    message = reply.json()["detail"]
    assert f"token 'wall-short' expired at {format_time(info.expires_at)}" in message
    assert "ask an admin for a new one" in message and "sharpeyes tokens create --user wall-short" in message
    listed = api.get("/api/v1/tokens", headers=auth(tokens[Role.ADMIN])).json()
    assert {t["name"]: t["state"] for t in listed}["wall-short"] == TokenState.EXPIRED.value


def test_expiry_defaults_and_the_api_field(api: TestClient, tokens: dict[Role, str]) -> None:
    admin = auth(tokens[Role.ADMIN])
    before = time.time()
    made = {
        name: api.post("/api/v1/tokens", json={"name": name, **body}, headers=admin).json()
        for name, body in {
            "wall-a": {"role": "viewer"},
            "wall-b": {"role": "viewer", "expires_in": "12h"},
            "case-a": {"role": "case_system"},
            "case-b": {"role": "case_system", "expires_in": "90d"},
            "ops-a": {"role": "operator", "expires_in": "never"},
        }.items()
    }
    assert before + DEFAULT_LIFETIME_S <= made["wall-a"]["expires_at"] <= time.time() + DEFAULT_LIFETIME_S
    assert before + 12 * 3600 <= made["wall-b"]["expires_at"] <= time.time() + 12 * 3600
    assert made["case-a"]["expires_at"] is None and made["ops-a"]["expires_at"] is None
    assert before + 90 * 86400 <= made["case-b"]["expires_at"] <= time.time() + 90 * 86400
    listed = {t["name"]: t for t in api.get("/api/v1/tokens", headers=admin).json()}
    assert listed["wall-b"]["expires_at"] == made["wall-b"]["expires_at"] and listed["wall-b"]["state"] == "active"
    bad = api.post("/api/v1/tokens", json={"name": "x", "role": "viewer", "expires_in": "soon"}, headers=admin)
    assert bad.status_code == 422 and "expires_in" in bad.json()["message"] and "'soon'" in bad.json()["message"]
    neither = api.post("/api/v1/tokens", json={"name": "x"}, headers=admin)
    assert neither.status_code == 422 and "give a role" in neither.json()["message"]


def test_disabling_a_user_refuses_all_its_tokens_and_enabling_accepts_them(
    api: TestClient, rclient: redis.Redis, tokens: dict[Role, str]
) -> None:
    admin = auth(tokens[Role.ADMIN])
    created = api.post("/api/v1/users", json={"name": "ann", "role": "operator"}, headers=admin)
    assert created.status_code == 201 and created.json()["enabled"] is True
    assert created.json()["created_by"] == "test-admin"
    laptop = api.post("/api/v1/tokens", json={"name": "ann-laptop", "user": "ann"}, headers=admin).json()
    wall = api.post("/api/v1/tokens", json={"name": "ann-wall", "user": "ann", "role": "viewer"}, headers=admin).json()
    assert (laptop["user"], laptop["role"], wall["role"]) == ("ann", "operator", "viewer")
    for token in (laptop["token"], wall["token"]):
        assert api.get("/api/v1/cameras", headers=auth(token)).status_code == 200
    # The narrowed token may not do what its user may.
    assert api.get("/api/v1/cameras/export", headers=auth(laptop["token"])).status_code == 200
    assert api.get("/api/v1/cameras/export", headers=auth(wall["token"])).status_code == 403

    disabled = api.post("/api/v1/users/ann/disable", headers=admin)
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    for token in (laptop["token"], wall["token"]):
        reply = api.get("/api/v1/cameras", headers=auth(token))
        assert reply.status_code == 401
        assert "user 'ann' is disabled, and so are all its tokens" in reply.json()["detail"]
    states = {t["name"]: t["state"] for t in api.get("/api/v1/tokens", headers=admin).json()}
    assert states["ann-laptop"] == states["ann-wall"] == "user_disabled"
    refused = api.post("/api/v1/tokens", json={"name": "ann-new", "user": "ann"}, headers=admin)
    assert refused.status_code == 409 and "disabled" in refused.json()["detail"]["message"]

    assert api.post("/api/v1/users/ann/enable", headers=admin).json()["enabled"] is True
    for token in (laptop["token"], wall["token"]):
        assert api.get("/api/v1/cameras", headers=auth(token)).status_code == 200
    assert api.post("/api/v1/users/ann/enable", headers=admin).status_code == 200  # already: no change, no entry

    # Every change is audited with who, what, before and after; the users list shows the state.
    entries = [e for e in reversed(read_audit(rclient, 100, None)) if e["action"].startswith("user.")]
    assert [(e["actor"], e["action"], e["target"]) for e in entries if e["target"] == "ann"] == [
        ("test-admin", "user.create", "ann"),
        ("test-admin", "user.disable", "ann"),
        ("test-admin", "user.enable", "ann"),
    ]
    disable = next(e for e in entries if e["action"] == "user.disable")
    assert (disable["before"], disable["after"]) == ({"enabled": True}, {"enabled": False})
    users = {u["name"]: u for u in api.get("/api/v1/users", headers=admin).json()}
    assert users["ann"]["role"] == "operator" and users["ann"]["updated_by"] == "test-admin"
    assert users["test-viewer"]["role"] == "viewer"  # the fixture's tokens brought their users


def test_user_and_token_requests_that_cannot_be_done(api: TestClient, tokens: dict[Role, str]) -> None:
    admin = auth(tokens[Role.ADMIN])
    api.post("/api/v1/users", json={"name": "bob", "role": "viewer"}, headers=admin)
    again = api.post("/api/v1/users", json={"name": "bob", "role": "admin"}, headers=admin)
    assert again.status_code == 409 and "exists already (role viewer)" in again.json()["detail"]["message"]
    wider = api.post("/api/v1/tokens", json={"name": "bob-ops", "user": "bob", "role": "operator"}, headers=admin)
    assert wider.status_code == 422 and wider.json()["detail"]["field"] == "role"
    assert "never widen it" in wider.json()["detail"]["message"]
    # By name alone (the old way), the name is the user: another role is a clash, said plainly.
    clash = api.post("/api/v1/tokens", json={"name": "bob", "role": "operator"}, headers=admin)
    assert clash.status_code == 409 and "user 'bob' exists with role 'viewer', not 'operator'" in clash.text
    assert api.post("/api/v1/tokens", json={"name": "bob", "role": "viewer"}, headers=admin).status_code == 201
    nobody = api.post("/api/v1/tokens", json={"name": "x-1", "user": "carol"}, headers=admin)
    assert nobody.status_code == 404 and nobody.json()["detail"]["field"] == "user"
    assert api.post("/api/v1/users/carol/disable", headers=admin).status_code == 404
    myself = api.post("/api/v1/users/test-admin/disable", headers=admin)
    assert myself.status_code == 409 and "cannot disable yourself" in myself.text
    bad = api.post("/api/v1/users", json={"name": "a b", "role": "emperor"}, headers=admin)
    assert bad.status_code == 422 and "name" in bad.json()["message"] and "role" in bad.json()["message"]


def test_store_rules(rclient: redis.Redis) -> None:
    store = TokenStore(rclient)
    store.users.create("sys", Role.ADMIN, "cli:root")
    token = store.create("sys-cases", Role.CASE_SYSTEM, user="sys")  # admin satisfies case_system: a narrowing
    principal = store.check(token)
    assert principal is not None and (principal.name, principal.role, principal.token) == (
        "sys",
        Role.CASE_SYSTEM,
        "sys-cases",
    )
    [info] = store.list()
    assert info.narrowed and info.expires_at is None  # case_system's default: no expiry
    with pytest.raises(NoSuchUser):
        store.users.set_enabled("nobody", False, "cli:root")
    with pytest.raises(AccountConflict):
        store.users.create("sys", Role.VIEWER, "cli:root")
    with pytest.raises(AccountError, match="user name 'a b' must be"):
        store.users.create("a b", Role.VIEWER, "cli:root")
    # A revoked token's name is free again for the same user.
    assert store.revoke("sys-cases")
    assert store.check(store.create("sys-cases", Role.CASE_SYSTEM, user="sys")) is not None


def test_tokens_stored_before_users_existed_still_work(rclient: redis.Redis) -> None:
    """A record of the old shape (no user, no expiry) keeps its role; a user of its name, if made, applies."""
    store = TokenStore(rclient)
    token = "se_" + "a" * 43
    legacy = b'{"name":"old-wall","role":"viewer","created_at":1700000000.0,"created_by":"cli:root"}'
    rclient.set(f"sharpeyes:token:{hashlib.sha256(token.encode()).hexdigest()}", legacy)
    rclient.hset("sharpeyes:token_names", "old-wall", hashlib.sha256(token.encode()).hexdigest())
    principal = store.check(token)
    assert principal is not None and (principal.name, principal.role) == ("old-wall", Role.VIEWER)
    assert [(t.name, t.user, t.role, t.expires_at) for t in store.list()] == [
        ("old-wall", "old-wall", Role.VIEWER, None)
    ]
    store.users.create("old-wall", Role.VIEWER, "cli:root")
    store.users.set_enabled("old-wall", False, "cli:root")
    assert store.check(token) is None
