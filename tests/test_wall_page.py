"""The alert wall page: served at /wall, self-contained, and never turning API data into HTML."""

from __future__ import annotations

import re
from importlib import resources as pkg_resources

from fastapi.testclient import TestClient

PAGE = pkg_resources.files("api").joinpath("static/wall.html").read_text(encoding="utf-8")
SCRIPT = PAGE[PAGE.index("<script>") : PAGE.rindex("</script>")]


def test_wall_is_served_without_data(api: TestClient) -> None:
    """No token needed for the page itself: it holds no data and fetches everything with the token after '#'."""
    resp = api.get("/wall")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert "sharpeyes — alert wall" in resp.text


def test_wall_uses_only_endpoints_the_api_has(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/alerts/feed", "/api/v1/alerts", "/api/v1/alerts/{alert_id}/snapshot", "/api/v1/cameras"):
        assert "get" in paths.get(path, {}), path
    used = set(re.findall(r"['`](/api/v1/[a-z/]*)", SCRIPT))
    assert used <= {"/api/v1/alerts/feed", "/api/v1/alerts", "/api/v1/alerts/", "/api/v1/cameras"}, used


def test_wall_is_self_contained() -> None:
    """The command center has no internet: no CDN, no external font, image or script."""
    assert not re.search(r"<(link|iframe|object|embed)\b", PAGE, re.I)
    assert not re.search(r"<script[^>]+src", PAGE, re.I)
    assert "@import" not in PAGE and "url(" not in PAGE
    assert re.findall(r"https?://[^'\"\s)]+", PAGE) == ["http://www.w3.org/2000/svg"]  # the SVG namespace


def test_wall_never_builds_html_from_data() -> None:
    """Camera and zone names may hold markup: the page builds DOM with textContent only."""
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"):
        assert sink not in SCRIPT, sink
    assert not re.search(r"setAttribute\(\s*['\"]on", SCRIPT)


def test_wall_token_stays_out_of_urls_and_disk() -> None:
    """Token from the fragment into sessionStorage, then off the address bar; never persisted or put in a URL."""
    assert "location.hash" in SCRIPT and "history.replaceState" in SCRIPT and "sessionStorage" in SCRIPT
    assert "localStorage" not in SCRIPT and "document.cookie" not in SCRIPT
    assert "Authorization: `Bearer ${token}`" in SCRIPT
    assert not re.search(r"[?&]token=", SCRIPT)
