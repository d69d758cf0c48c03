"""The command line: help that explains, settings errors that name the value, tokens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from api.auth import Role, TokenStore
from sharpeyes.cli import build_parser, main


def test_help_lists_every_command() -> None:
    text = build_parser().format_help()
    for command in ("run", "api", "worker", "users", "tokens", "demo", "settings"):
        assert command in text


def test_bad_setting_exits_2_with_the_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHARPEYES_API_PORT", "eighty")
    assert main(["settings"]) == 2
    assert "SHARPEYES_API_PORT='eighty'" in capsys.readouterr().err


def test_tokens_create_list_revoke(redis_url: str, rclient: redis.Redis, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYES_")}
    env.update(SHARPEYES_REDIS_URL=redis_url, SHARPEYES_DATA_DIR=str(tmp_path))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sharpeyes", *args], env=env, capture_output=True, text=True, timeout=60
        )

    created = cli("tokens", "create", "--role", "viewer", "--name", "wall-1")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert TokenStore(rclient).check(token) is not None
    assert TokenStore(rclient).check(token).role is Role.VIEWER  # type: ignore[union-attr]
    listed = cli("tokens", "list").stdout
    assert "wall-1\tviewer\twall-1\texpires 20" in listed and "\tactive" in listed
    assert token not in listed
    assert cli("users", "list").stdout.startswith("wall-1\tviewer\tenabled\tcreated ")
    again = cli("tokens", "create", "--role", "viewer", "--name", "wall-1")
    assert again.returncode != 0 and "exists already" in again.stderr
    assert cli("tokens", "revoke", "wall-1").returncode == 0
    assert TokenStore(rclient).check(token) is None
    bad_role = cli("tokens", "create", "--role", "god", "--name", "x")
    assert bad_role.returncode == 2 and "invalid choice: 'god'" in bad_role.stderr


def test_users_and_token_expiry_on_the_command_line(redis_url: str, rclient: redis.Redis, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYES_")}
    env.update(SHARPEYES_REDIS_URL=redis_url, SHARPEYES_DATA_DIR=str(tmp_path))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sharpeyes", *args], env=env, capture_output=True, text=True, timeout=60
        )

    assert cli("users", "create", "ann", "--role", "operator").returncode == 0
    made = cli("tokens", "create", "--user", "ann", "--name", "ann-wall", "--role", "viewer", "--expires-in", "12h")
    assert made.returncode == 0, made.stderr
    assert "for user 'ann' (viewer) created, expires 20" in made.stderr
    case = cli("tokens", "create", "--role", "case_system", "--name", "cases")
    assert "expires never" in case.stderr
    assert "ann-wall\tviewer\tann\texpires 20" in cli("tokens", "list").stdout
    clash = cli("tokens", "create", "--role", "admin", "--name", "ann")
    assert clash.returncode == 1 and "user 'ann' exists with role 'operator', not 'admin'" in clash.stderr
    bad = cli("tokens", "create", "--role", "viewer", "--name", "x", "--expires-in", "soon")
    assert bad.returncode == 2 and "expires_in 'soon' is not a duration" in bad.stderr
    assert cli("users", "disable", "ann").returncode == 0
    assert TokenStore(rclient).check(made.stdout.strip()) is None
    assert "ann\toperator\tdisabled" in cli("users", "list").stdout
    assert cli("users", "enable", "ann").returncode == 0
    assert TokenStore(rclient).check(made.stdout.strip()) is not None
    missing = cli("users", "disable", "nobody")
    assert missing.returncode == 1 and "no user named 'nobody'" in missing.stderr
