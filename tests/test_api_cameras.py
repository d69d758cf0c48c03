"""The camera API end to end over HTTP (FastAPI's test client), on a real Redis-protocol server and ipycam."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.audit import AUDIT_STREAM
from api.auth import Role
from config.settings import Settings
from ingest.registry import CAMERA_KEY
from tests.conftest import auth
from tests.ipycam_fixtures import IpyCam
from tests.registry_data import city_row, to_csv

BODY: dict[str, Any] = {
    "name": "Main St & 3rd",
    "stream_url": "rtsp://10.0.0.5/stream1",
    "location": {"lat": 40.7128, "lon": -74.006, "district": "Downtown"},
    "zones": [{"name": "crosswalk", "polygon": [[0.3, 0.4], [0.7, 0.4], [0.7, 0.85], [0.3, 0.85]]}],
}


@pytest.fixture
def client(settings: Settings, redis_url: str, rclient: redis.Redis, tokens: dict[Role, str]) -> Iterator[TestClient]:
    """The API, probing allowed on loopback, with the operator's token by default."""
    loop = settings.model_copy(update={"probe_allowed_networks": "127.0.0.0/8", "import_max_bytes": 200_000})
    with TestClient(create_app(loop, redis_url), headers=auth(tokens[Role.OPERATOR])) as http:
        yield http


def stored_ids(rclient: redis.Redis) -> set[bytes]:
    return set(rclient.smembers("sharpeyes:cameras"))  # type: ignore[arg-type]


def test_register_by_rtsp_url(client: TestClient) -> None:
    created = client.post("/api/v1/cameras", json=BODY)
    assert created.status_code == 201, created.text
    cam = created.json()
    assert cam["state"] == "connecting" and cam["created_by"] == "test-operator"
    assert cam["has_password"] is False and "password" not in cam and "password_enc" not in cam
    assert client.get(f"/api/v1/cameras/{cam['id']}").json()["name"] == "Main St & 3rd"


def test_passwords_are_write_only(client: TestClient, rclient: redis.Redis) -> None:
    created = client.post("/api/v1/cameras", json={**BODY, "username": "admin", "password": "hunter2-secret"})
    assert created.status_code == 201, created.text
    cam = created.json()
    assert cam["has_password"] is True and cam["password_updated_at"]
    everything = [
        created.text,
        client.get(f"/api/v1/cameras/{cam['id']}").text,
        client.get("/api/v1/cameras").text,
        client.get("/api/v1/cameras/export?format=json").text,
        client.get("/api/v1/cameras/export?format=csv").text,
        client.get("/api/v1/cameras/geojson").text,
        json.dumps([f[b"entry"].decode() for _, f in rclient.xrange(AUDIT_STREAM)]),
        (rclient.get(CAMERA_KEY.format(id=cam["id"])) or b"").decode(),
    ]
    assert not any("hunter2-secret" in text for text in everything)
    # Renaming without the password keeps it; "" removes it.
    renamed = client.put(f"/api/v1/cameras/{cam['id']}", json={**BODY, "name": "Renamed", "username": "admin"})
    assert renamed.json()["has_password"] is True
    cleared = client.patch(f"/api/v1/cameras/{cam['id']}", json={"password": ""})
    assert cleared.json()["has_password"] is False


def test_register_by_onvif_address_takes_the_probed_streams(client: TestClient, locked_camera: IpyCam) -> None:
    body = {**BODY, "stream_url": None, "onvif_url": f"127.0.0.1:{locked_camera.onvif_port}"}
    created = client.post("/api/v1/cameras", json={**body, "username": "admin", "password": "s3cret pass"})
    assert created.status_code == 201, created.text
    cam = created.json()
    assert cam["stream_url"] == f"rtsp://127.0.0.1:{locked_camera.rtsp_port}/video_sub"
    assert cam["main_stream_url"] == f"rtsp://127.0.0.1:{locked_camera.rtsp_port}/video_main"
    assert cam["probe"]["ok"] is True and cam["probe"]["manufacturer"] == "PythonCam"
    assert client.get(f"/api/v1/cameras/{cam['id']}").json()["probe"]["detection_profile"] == "Profile_Sub"
    # Re-probing keeps hand-set streams unless told to replace them.
    client.patch(f"/api/v1/cameras/{cam['id']}", json={"stream_url": "rtsp://127.0.0.1:9/custom"})
    kept = client.post(f"/api/v1/cameras/{cam['id']}/probe").json()
    assert kept["probe"]["ok"] and kept["camera"]["stream_url"] == "rtsp://127.0.0.1:9/custom"
    replaced = client.post(f"/api/v1/cameras/{cam['id']}/probe?streams=replace").json()
    assert replaced["camera"]["stream_url"] == cam["stream_url"]


def test_a_failed_probe_registers_nothing_and_says_why(
    client: TestClient, locked_camera: IpyCam, rclient: redis.Redis
) -> None:
    body = {**BODY, "onvif_url": f"127.0.0.1:{locked_camera.onvif_port}", "username": "admin", "password": "nope"}
    refused = client.post("/api/v1/cameras", json=body)
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert (detail["field"], detail["error"]) == ("password", "bad_credentials")
    assert "refused the username or password" in detail["message"] and "nope" not in refused.text
    assert stored_ids(rclient) == set()


def test_probing_is_refused_outside_the_allowed_networks(
    settings: Settings, redis_url: str, rclient: redis.Redis, tokens: dict[Role, str], locked_camera: IpyCam
) -> None:
    with TestClient(create_app(settings, redis_url), headers=auth(tokens[Role.OPERATOR])) as http:
        refused = http.post("/api/v1/cameras", json={**BODY, "onvif_url": f"127.0.0.1:{locked_camera.onvif_port}"})
    assert refused.status_code == 422
    assert refused.json()["detail"]["error"] == "not_allowed"
    assert "SHARPEYES_PROBE_ALLOWED_NETWORKS" in refused.json()["detail"]["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"location": {"lat": 95, "lon": 0}}, "location.lat"),
        ({"location": {"lat": 0, "lon": "east"}}, "location.lon"),
        ({"name": 17}, "name"),
        ({"stream_url": "rtsp://admin:topsecret@10.0.0.5/s"}, "stream_url"),
        ({"zones": [{"name": "x", "polygon": [[0, 0], [1, 1], [1, 0], [0, 0.6]]}]}, "zones.0.polygon"),
        ({"zones": [{"name": "x", "polygon": [[0, 0], [0.001, 0], [0, 0.001]]}]}, "zones.0.polygon"),
        ({"zoom": 3}, "zoom"),
        ({"tags": "school"}, "tags"),
        ({"external_id": ""}, "external_id"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    client: TestClient, rclient: redis.Redis, change: dict[str, Any], field: str
) -> None:
    refused = client.post("/api/v1/cameras", json={**BODY, **change})
    assert refused.status_code == 422, refused.text
    assert refused.json()["message"].startswith(f"{field}: "), refused.json()["message"]
    assert "topsecret" not in refused.text
    assert stored_ids(rclient) == set()


def test_malformed_json_is_refused(client: TestClient, rclient: redis.Redis) -> None:
    refused = client.post("/api/v1/cameras", content=b'{"name": "x",', headers={"Content-Type": "application/json"})
    # The app's handler names the character where the JSON broke.
    assert refused.status_code == 422 and refused.json()["message"].startswith("13: JSON decode error")
    assert stored_ids(rclient) == set()


def test_patch_put_delete(client: TestClient) -> None:
    cam = client.post("/api/v1/cameras", json={**BODY, "external_id": "E-1"}).json()
    moved = client.patch(f"/api/v1/cameras/{cam['id']}", json={"location": {"lat": 40.8}})
    assert moved.status_code == 200 and moved.json()["location"]["lon"] == -74.006
    assert moved.json()["location"]["lat"] == 40.8
    unknown = client.patch(f"/api/v1/cameras/{cam['id']}", json={"colour": "red"})
    assert unknown.status_code == 422 and unknown.json()["detail"]["field"] == "colour"
    bad = client.patch(f"/api/v1/cameras/{cam['id']}", json={"location": {"lat": 200}})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "location.lat"
    other = client.post("/api/v1/cameras", json={**BODY, "external_id": "E-2"}).json()
    clash = client.patch(f"/api/v1/cameras/{other['id']}", json={"external_id": "E-1"})
    assert clash.status_code == 409 and clash.json()["detail"]["field"] == "external_id"
    assert client.post("/api/v1/cameras", json={**BODY, "external_id": "E-1"}).status_code == 409
    assert client.put(f"/api/v1/cameras/{cam['id']}", json={**BODY, "name": "Put"}).json()["name"] == "Put"
    assert client.delete(f"/api/v1/cameras/{cam['id']}").status_code == 204
    assert client.get(f"/api/v1/cameras/{cam['id']}").status_code == 404
    assert client.delete(f"/api/v1/cameras/{cam['id']}").status_code == 404
    assert client.get("/api/v1/cameras/not-an-id").status_code == 422


def _import(client: TestClient, n: int) -> None:
    rows = [city_row(i) for i in range(n)]
    reply = client.post("/api/v1/cameras/import", content=to_csv(rows), headers={"Content-Type": "text/csv"})
    assert reply.status_code == 200, reply.text


def test_listing_filters_and_cursor_pages(client: TestClient) -> None:
    _import(client, 90)
    everything: list[str] = []
    cursor: str | None = None
    while True:
        page = client.get("/api/v1/cameras", params={"limit": 7, **({"cursor": cursor} if cursor else {})}).json()
        everything += [c["id"] for c in page["cameras"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(everything) == 90 and everything == sorted(everything)
    noord = client.get("/api/v1/cameras", params={"district": "noord", "limit": 1000}).json()["cameras"]
    assert len(noord) == 6 and {c["location"]["district"] for c in noord} == {"Noord"}
    schools = client.get("/api/v1/cameras", params=[("tag", "school"), ("tag", "district-cen")]).json()["cameras"]
    assert {c["external_id"] for c in schools} == {f"CEN-{i:05d}" for i in range(0, 90, 15)}
    found = client.get("/api/v1/cameras", params={"q": "CAMERA 4"}).json()["cameras"]
    assert sorted(c["name"] for c in found) == sorted(city_row(i)["name"] for i in (4, *range(40, 50)))
    disabled = client.get("/api/v1/cameras", params={"state": "disabled"}).json()["cameras"]
    assert {c["external_id"] for c in disabled} == {"CEN-00000", "NWW-00050"}
    no_stream = client.get("/api/v1/cameras", params={"state": "no_stream", "limit": 1000}).json()["cameras"]
    assert len(no_stream) == 16 and all(c["stream_url"] is None for c in no_stream)  # every 5th, minus disabled
    bad = client.get("/api/v1/cameras", params={"cursor": "bm9wZQ"})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "cursor"


def test_geojson_has_every_camera_with_its_state(client: TestClient) -> None:
    _import(client, 40)
    reply = client.get("/api/v1/cameras/geojson")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/geo+json"
    doc = reply.json()
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 40
    by_ext = {f["properties"]["external_id"]: f for f in doc["features"]}
    row = city_row(7)
    feature = by_ext[row["external_id"]]
    assert feature["geometry"] == {"type": "Point", "coordinates": [float(row["lon"]), float(row["lat"])]}
    assert feature["properties"]["state"] == "connecting" and feature["properties"]["district"] == row["district"]
    assert by_ext[city_row(5)["external_id"]]["properties"]["state"] == "no_stream"
    # Walls poll: unchanged means 304, and the body travels gzipped when they accept it.
    etag = reply.headers["etag"]
    assert client.get("/api/v1/cameras/geojson", headers={"If-None-Match": etag}).status_code == 304
    zipped = client.get("/api/v1/cameras/geojson", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.json() == doc
    client.patch(f"/api/v1/cameras/{feature['id']}", json={"name": "Renamed"})
    changed = client.get("/api/v1/cameras/geojson", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_import_and_export_over_http(client: TestClient, rclient: redis.Redis) -> None:
    rows = [city_row(i) for i in range(30)]
    rows[4]["lat"] = "-91"
    reply = client.post("/api/v1/cameras/import", content=to_csv(rows), headers={"Content-Type": "text/csv"})
    assert reply.status_code == 200
    report = reply.json()
    assert (report["created"], report["failed"]) == (29, 1)
    assert report["errors"] == [
        {
            "line": 6,
            "external_id": rows[4]["external_id"],
            "field": "lat",
            "reason": "Input should be greater than or equal to -90 (got -91.0)",
        }
    ]
    exported = client.get("/api/v1/cameras/export?format=json")
    assert exported.headers["content-disposition"] == 'attachment; filename="cameras.json"'
    again = client.post(
        "/api/v1/cameras/import", content=exported.content, headers={"Content-Type": "application/json"}
    )
    assert (again.json()["unchanged"], again.json()["updated"]) == (29, 0)


def test_bad_import_files_write_nothing(client: TestClient, rclient: redis.Redis) -> None:
    malformed = client.post(
        "/api/v1/cameras/import", content=b'[{"external_id": "x",]', headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 422 and malformed.json()["detail"]["message"].startswith("body: malformed JSON")
    huge = client.post("/api/v1/cameras/import", content=b"x" * 200_001, headers={"Content-Type": "text/csv"})
    assert huge.status_code == 413
    assert "limit of 200,000 bytes (import_max_bytes)" in huge.json()["detail"]["message"]
    rows = [city_row(i) for i in range(5)]
    rows[3]["external_id"] = rows[1]["external_id"]
    strict = client.post(
        "/api/v1/cameras/import?strict=true", content=to_csv(rows), headers={"Content-Type": "text/csv"}
    )
    assert strict.status_code == 422 and {e["field"] for e in strict.json()["errors"]} == {"external_id"}
    unknown = client.post(
        "/api/v1/cameras/import", content=b"external_id,naam\nA,b\n", headers={"Content-Type": "text/csv"}
    )
    assert unknown.status_code == 422 and "unknown column(s) 'naam'" in unknown.json()["detail"]["message"]
    assert stored_ids(rclient) == set()


def test_import_then_probe_over_http(client: TestClient, locked_camera: IpyCam) -> None:
    rows = [city_row(i) for i in (5, 10)]  # both by ONVIF address only
    for row in rows:
        row.update(onvif_url=f"127.0.0.1:{locked_camera.onvif_port}", username="admin", password="s3cret pass")
    rows[1]["password"] = "wrong"
    reply = client.post("/api/v1/cameras/import?probe=true", content=to_csv(rows), headers={"Content-Type": "text/csv"})
    assert reply.status_code == 200, reply.text
    probe = reply.json()["probe"]
    assert (probe["probed"], probe["ok"], probe["by_error"]) == (2, 1, {"bad_credentials": 1})
    assert probe["failures"][0]["external_id"] == rows[1]["external_id"]
    listed = {c["external_id"]: c for c in client.get("/api/v1/cameras").json()["cameras"]}
    assert listed[rows[0]["external_id"]]["stream_url"] == f"rtsp://127.0.0.1:{locked_camera.rtsp_port}/video_sub"
    failed = listed[rows[1]["external_id"]]
    assert (failed["stream_url"], failed["state"], failed["probe"]["error"]) == (None, "no_stream", "bad_credentials")
