"""The alert wall page: served at /wall, self-contained, and never turning API data into HTML."""

from __future__ import annotations

import re
from importlib import resources as pkg_resources

from fastapi.testclient import TestClient

from alerts.models import clip_path, idempotency_key, snapshot_path
from api.auth import Role
from detectors.events import CAMERA_ZONE, EventType
from ingest.cameras import CameraState
from tests.conftest import auth

PAGE = pkg_resources.files("api").joinpath("static/wall.html").read_text(encoding="utf-8")
SCRIPT = PAGE[PAGE.index("<script>") : PAGE.rindex("</script>")]


def test_wall_is_served_without_data(api: TestClient) -> None:
    """No token needed for the page itself: it holds no data and fetches everything with the token after '#'."""
    resp = api.get("/wall")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert "sharpeyes — alert wall" in resp.text


WALL_ENDPOINTS = {
    "/api/v1/alerts/feed",
    "/api/v1/alerts",
    "/api/v1/alerts/{alert_id}/snapshot",
    "/api/v1/alerts/{alert_id}/clip",
    "/api/v1/cameras/geojson",
}


def test_wall_uses_only_endpoints_the_api_has(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path in WALL_ENDPOINTS:
        assert "get" in paths.get(path, {}), path
    used = set(re.findall(r"['`](/api/v1/[a-z/]*)", SCRIPT))
    # Snapshot and clip paths come from the alerts, checked against the patterns below.
    assert used == {"/api/v1/alerts/feed", "/api/v1/alerts", "/api/v1/cameras/geojson"}, used


def _js_regex(name: str) -> re.Pattern[str]:
    found = re.search(rf"const {name} = /(.+?)/;", SCRIPT)
    assert found is not None, name
    return re.compile(found.group(1).replace("\\/", "/"))


def test_wall_fetches_with_the_token_only_the_paths_the_alerts_carry() -> None:
    """The bearer token goes only to the exact snapshot and clip paths the server writes into alerts."""
    key = idempotency_key("cam_000000000001", "crosswalk", EventType.MOTION, 1_700_000_000.0)
    snap, clip = _js_regex("SNAP_PATH"), _js_regex("CLIP_PATH")
    assert snap.match(snapshot_path(key)) and not snap.match(clip_path(key))
    assert clip.match(clip_path(key)) and not clip.match(snapshot_path(key))
    for hostile in ("//evil.example/api/v1/alerts/" + key + "/clip", clip_path(key) + "?x", clip_path("../../x")):
        assert not clip.match(hostile) and not snap.match(hostile), hostile
    assert "CLIP_PATH.test(a.clip)" in SCRIPT and "SNAP_PATH.test(a.snapshot)" in SCRIPT


def test_wall_knows_every_event_type_and_camera_state() -> None:
    """A label per event type and a colour and rank per camera state; unknown values still render."""
    types = re.search(r"const TYPES = \{(.+?)\};", SCRIPT, re.S)
    assert types is not None
    assert set(re.findall(r"(\w+): '", types.group(1))) == {t.value for t in EventType}
    order = re.search(r"const TROUBLE_ORDER = \[(.+?)\];", SCRIPT)
    assert order is not None
    states = {"online", "disabled", *re.findall(r"'(\w+)'", order.group(1))}
    assert states == {s.value for s in CameraState}
    for state in states:
        assert re.search(rf"\[data-st={state}\]", PAGE), f"no colour for camera state {state}"
    assert f"CAMERA_ZONE = '{CAMERA_ZONE}'" in SCRIPT


def test_wall_geojson_poll_is_conditional(api: TestClient, tokens: dict[Role, str]) -> None:
    """The wall sends the ETag back: the page does it, and the server answers 304 to it, gzip when asked."""
    assert "headers['If-None-Match'] = etag" in SCRIPT and "r.status === 304" in SCRIPT
    assert "api('/api/v1/cameras/geojson', { clock: true, etag" in SCRIPT
    first = api.get("/api/v1/cameras/geojson", headers=auth(tokens[Role.VIEWER]))
    assert first.status_code == 200 and first.json()["type"] == "FeatureCollection"
    again = api.get(
        "/api/v1/cameras/geojson", headers={**auth(tokens[Role.VIEWER]), "If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""


def test_wall_clip_is_fetched_on_request_and_released() -> None:
    """Every clip view is audited: fetched on the operator's click only, and its object URL revoked on close."""
    click = SCRIPT.index("$('clip-btn').addEventListener('click'")
    fetches = [m.start() for m in re.finditer(r"api\(ev\.clipPath", SCRIPT)]
    assert len(fetches) == 1 and fetches[0] > click
    close = SCRIPT[SCRIPT.index("function closeClip()") :]
    assert "URL.revokeObjectURL(clipUrl)" in close[: close.index("\n}")]
    assert re.search(r"<video id=\"clip\" controls muted", PAGE)


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
