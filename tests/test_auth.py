"""Tokens: random, shown once, stored only hashed, revocable, audited; and the admin endpoints for them."""

from __future__ import annotations

import hashlib

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.audit import read_audit
from api.auth import Role, TokenStore
from config.settings import Settings
from tests.conftest import auth


def test_tokens_are_stored_only_as_hashes(rclient: redis.Redis) -> None:
    store = TokenStore(rclient)
    token = store.create("wall-3", Role.VIEWER, actor="admin-ann")
    assert token.startswith("se_") and len(token) > 40
    dump = b"".join(k + (rclient.dump(k) or b"") for k in rclient.keys("*"))
    assert token.encode() not in dump
    assert rclient.exists(f"sharpeyes:token:{hashlib.sha256(token.encode()).hexdigest()}")
    principal = store.check(token)
    assert principal is not None and (principal.name, principal.role, principal.token) == (
        "wall-3",
        Role.VIEWER,
        "wall-3",
    )
    assert [(t.name, t.user, t.created_by) for t in store.list()] == [("wall-3", "wall-3", "admin-ann")]
    assert store.check(token + "x") is None


def test_names_are_unique_and_sane(rclient: redis.Redis) -> None:
    store = TokenStore(rclient)
    store.create("ops-desk", Role.OPERATOR)
    with pytest.raises(ValueError, match="exists already: revoke it first"):
        store.create("ops-desk", Role.VIEWER)
    for bad in ("", "a b", "x" * 65, "-lead", "tab\t"):
        with pytest.raises(ValueError, match="must be 1 to 64 letters"):
            store.create(bad, Role.VIEWER)


def test_revoke_and_audit(rclient: redis.Redis) -> None:
    store = TokenStore(rclient)
    token = store.create("case-a", Role.CASE_SYSTEM)
    assert store.revoke("case-a", actor="admin-ann") and store.check(token) is None
    assert not store.revoke("case-a")
    assert [p.name for p in store.list()] == []
    entries = read_audit(rclient, 10, None)
    assert [(e["action"], e["target"]) for e in entries] == [
        ("token.revoke", "case-a"),
        ("token.create", "case-a"),
        ("user.create", "case-a"),  # tokens made by name alone bring their user along
    ]
    assert entries[0]["actor"] == "admin-ann" and entries[1]["actor"].startswith("cli")
    assert entries[0]["before"] == {"user": "case-a", "role": "case_system"} and token not in str(entries)
    assert entries[1]["after"] == {"role": "case_system", "user": "case-a", "expires_at": "never"}


def test_admin_endpoints_for_tokens_and_settings(
    settings: Settings, redis_url: str, rclient: redis.Redis, tokens: dict[Role, str]
) -> None:
    with TestClient(create_app(settings, redis_url), headers=auth(tokens[Role.ADMIN])) as http:
        created = http.post("/api/v1/tokens", json={"name": "wall-9", "role": "viewer"})
        assert created.status_code == 201 and created.json()["token"].startswith("se_")
        again = http.post("/api/v1/tokens", json={"name": "wall-9", "role": "viewer"})
        assert again.status_code == 409 and again.json()["detail"]["field"] == "name"
        bad = http.post("/api/v1/tokens", json={"name": "wall 9", "role": "emperor"})
        assert bad.status_code == 422 and "name" in bad.json()["message"] and "role" in bad.json()["message"]
        listed = http.get("/api/v1/tokens").json()
        assert {p["name"] for p in listed} == {"wall-9", *(f"test-{r.value}" for r in Role)}
        assert "token" not in listed[0]
        assert http.delete("/api/v1/tokens/nobody").status_code == 404
        shown = http.get("/api/v1/settings").json()
        assert shown["probe_allowed_networks"]["value"] == "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
        assert "description" in shown["import_max_bytes"]


def test_a_password_in_the_redis_url_is_masked(
    settings: Settings, redis_url: str, rclient: redis.Redis, tokens: dict[Role, str]
) -> None:
    shown = settings.model_copy(update={"redis_url": redis_url.replace("redis://", "redis://:s3cr3t@")})
    app = create_app(shown, redis_url)
    with TestClient(app, headers=auth(tokens[Role.ADMIN])) as http:
        value = http.get("/api/v1/settings").json()["redis_url"]["value"]
    assert "s3cr3t" not in value and ":***@" in value
