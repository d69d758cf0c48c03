"""Registry benchmarks with 11,000 cameras: import, listing and GeoJSON latency under 20 clients, probe throughput.

    python -m benchmarks.bench_registry              # everything, about 3 minutes
    python -m benchmarks.bench_registry --quick      # fewer requests and probes, about 1 minute

Tables:
 1. importing the generated 11,000-camera city file (with its sprinkled errors): first run and the
    idempotent second run, wall and CPU time, against a baseline that only writes the same number of
    ~1 kB JSON documents to Redis in the same batches (no parsing, no validation, no audit);
 2. p50/p99 latency of a filtered page of cameras (district + tag, and by live state) and of the GeoJSON
    of all 11,000 cameras, 20 clients at once against a real `sharpeyes api` process, against GET /healthz
    under the same load as the baseline; and the GeoJSON rebuild itself (in-process CPU, the 1 s cache off);
 3. probe throughput against several ipycam instances (real ONVIF over loopback) at several
    concurrencies, against a baseline of bare unauthenticated GetSystemDateAndTime requests.
Every figure is a median over repetitions interleaved with its baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import redis
from cryptography.fernet import Fernet

from api.auth import Role, TokenStore
from api.camera_views import GeoJsonBody, geojson, stale_after
from benchmarks.table import print_table
from ingest.bulk_probe import probe_many
from ingest.camera_files import FileFormat
from ingest.cameras import CameraState
from ingest.health import HEALTH_KEY, CameraHealth
from ingest.importer import run_import
from ingest.netguard import NetGuard
from ingest.onvif_probe import ProbeConfig
from ingest.registry import CameraRegistry, StreamPolicy
from ingest.secretbox import SecretBox
from ingest.synthetic import standard_clip
from tests.ipycam_fixtures import IpyCam, ensure_ipycam_venv, ffmpeg_missing
from tests.peers import free_port, redis_server_url
from tests.registry_data import city_file

ROOT = Path(__file__).resolve().parent.parent
CITY = 11_000
CLIENTS = 20
BATCH = 500


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- 1. import ---------------------------------------------------------------------------------------


def bench_import(url: str, repeats: int) -> None:
    client = redis.Redis.from_url(url)
    data, expected = city_file(CITY)
    box = SecretBox(Fernet.generate_key())
    samples: dict[str, list[tuple[float, float]]] = {"baseline": [], "first": [], "second": []}
    for _ in range(repeats):
        client.flushall()
        samples["baseline"].append(_timed(lambda: _raw_writes(client, CITY)))
        client.flushall()
        registry = CameraRegistry(client, box)
        run = functools.partial(run_import, registry, data, FileFormat.CSV, "bench")
        samples["first"].append(_timed(run))
        samples["second"].append(_timed(run))
    base_wall = statistics.median(w for w, _ in samples["baseline"])
    rows = []
    for name, label in (
        ("baseline", "baseline: raw SET of 11,000 ~1 kB docs, 500 per pipeline"),
        ("first", f"import 11,000 rows, first run ({len(expected)} bad rows reported)"),
        ("second", "import again: idempotent, nothing written"),
    ):
        wall = statistics.median(w for w, _ in samples[name])
        cpu = statistics.median(c for _, c in samples[name])
        rows.append((label, wall, cpu, CITY / wall, wall / base_wall))
    print_table(
        f"Import of the 11,000-camera city file (median of {repeats}, embedded Valkey on this machine)",
        ("run", "wall s", "CPU s", "rows/s", "x baseline"),
        rows,
    )


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _raw_writes(client: redis.Redis, n: int) -> None:
    doc = b'{"pad": "' + b"x" * 1000 + b'"}'
    for start in range(0, n, BATCH):
        with client.pipeline(transaction=True) as pipe:
            for i in range(start, min(n, start + BATCH)):
                pipe.set(f"bench:doc:{i}", doc)
            pipe.execute()


# --- 2. listing and GeoJSON under load ---------------------------------------------------------------


def _report_online(client: redis.Redis, ids: list[str]) -> None:
    now = time.time()
    for start in range(0, len(ids), BATCH):
        with client.pipeline(transaction=False) as pipe:
            for cid in ids[start : start + BATCH]:
                health = CameraHealth(
                    state=CameraState.ONLINE, since=now - 60, reported_at=now, worker="bench", last_frame_at=now
                )
                pipe.set(HEALTH_KEY.format(id=cid), health.model_dump_json())
            pipe.execute()


def bench_listing(url: str, requests_per_client: int, tmp: Path) -> None:
    client = redis.Redis.from_url(url)
    client.flushall()
    registry = CameraRegistry(client, SecretBox(Fernet.generate_key()))
    data, _ = city_file(CITY)
    run_import(registry, data, FileFormat.CSV, "bench")
    ids = registry.ids()
    _report_online(client, ids)
    token = TokenStore(client).create("bench-wall", Role.VIEWER, actor="bench")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYES_")}
    env.update(SHARPEYES_REDIS_URL=url, SHARPEYES_API_PORT=str(port), SHARPEYES_DATA_DIR=str(tmp / "api"))
    log = (tmp / "api.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "sharpeyes", "api"], env=env, stdout=log, stderr=log, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base)
        targets = {
            "GET /healthz (baseline)": "/healthz",
            "page: district + tag, 100 cameras": "/api/v1/cameras?district=Noord&tag=park&limit=100",
            "page: live state online, 100 cameras": "/api/v1/cameras?state=online&limit=100",
            "page: text search 'camera 4'": "/api/v1/cameras?q=camera%204&limit=100",
            "GeoJSON of all 11,000 cameras (gzip)": "/api/v1/cameras/geojson",
            "GeoJSON revalidated (If-None-Match: 304)": "/api/v1/cameras/geojson#etag",
        }
        results: dict[str, list[list[float]]] = {name: [] for name in targets}
        for _round in range(3):  # interleaved rounds; each is 20 clients at once on one endpoint
            for name, path in targets.items():
                _report_online(client, ids)
                results[name].append(asyncio.run(_load(base, path, token, requests_per_client)))
        base_p50 = statistics.median(_percentile(r, 0.5) for r in results["GET /healthz (baseline)"])
        rows = []
        for name in targets:
            p50 = statistics.median(_percentile(r, 0.5) for r in results[name]) * 1000
            p99 = statistics.median(_percentile(r, 0.99) for r in results[name]) * 1000
            rows.append((name, p50, p99, p50 / (base_p50 * 1000)))
        print_table(
            f"Latency with {CITY:,} cameras, {CLIENTS} concurrent clients x {requests_per_client} requests "
            "(median of 3 interleaved rounds; `sharpeyes api`, one uvicorn worker, 2 shared cores)",
            ("request", "p50 ms", "p99 ms", "p50 x healthz"),
            rows,
        )
        stale = stale_after(2.0)
        snapshot = registry.snapshot()
        heads: dict[str, Any] = {}
        geojson(snapshot, client, stale, heads)  # the cameras' static parts, built once per camera change
        rebuild, zipped = [], []
        for _ in range(5):
            start = time.process_time()
            body = geojson(snapshot, client, stale, heads)
            rebuild.append(time.process_time() - start)
            start = time.process_time()
            packed = GeoJsonBody(body).gzipped
            zipped.append(time.process_time() - start)
        print_table(
            "GeoJSON rebuild, in-process (done at most once per health interval, 2 s, whatever the number of walls)",
            ("cameras", "rebuild CPU ms", "gzip CPU ms", "bytes", "gzipped bytes"),
            [(CITY, statistics.median(rebuild) * 1000, statistics.median(zipped) * 1000, len(body), len(packed))],
        )
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def _wait_up(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("sharpeyes api did not start")


async def _load(base: str, path: str, token: str, per_client: int) -> list[float]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as http:
        extra: dict[str, str] = {}
        if path.endswith("#etag"):
            path = path.removesuffix("#etag")
            extra["If-None-Match"] = (await http.get(path)).headers["etag"]

        async def one_client() -> None:
            for _ in range(per_client):
                start = time.perf_counter()
                reply = await http.get(path, headers=extra)
                latencies.append(time.perf_counter() - start)
                if reply.status_code != 304:
                    reply.raise_for_status()

        await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
    return latencies


# --- 3. probe throughput -----------------------------------------------------------------------------


def bench_probes(url: str, instances: int, per_instance: int, concurrencies: list[int]) -> None:
    missing = ffmpeg_missing()
    if missing is not None:
        print(f"\n(probe benchmark skipped: ipycam needs ffmpeg: {missing})")
        return
    ensure_ipycam_venv()
    clip = standard_clip("walker", ROOT / "var" / "test-clips", container="mp4")
    cams = [IpyCam(clip, username="admin", password="pw") for _ in range(instances)]
    try:
        client = redis.Redis.from_url(url)
        client.flushall()
        registry = CameraRegistry(client, SecretBox(Fernet.generate_key()))
        lines = ["external_id,name,lat,lon,onvif_url,username,password"]
        for n, cam in enumerate(cams):
            for k in range(per_instance):
                lines.append(f"P{n}-{k},probe {n}-{k},52.1,4.3,127.0.0.1:{cam.onvif_port},admin,pw")
        result = run_import(registry, "\n".join(lines).encode(), FileFormat.CSV, "bench")
        ids = result.imported_ids
        config = ProbeConfig(NetGuard.from_setting("127.0.0.0/8"), 30.0, 300.0)
        rows = []
        for concurrency in concurrencies:
            probe_rates, bare_rates = [], []
            for _ in range(3):
                bare_rates.append(len(ids) / asyncio.run(_bare_time_requests(cams, len(ids), concurrency)))
                start = time.perf_counter()
                summary = asyncio.run(
                    probe_many(registry, ids, config, "bench", concurrency=concurrency, policy=StreamPolicy.KEEP)
                )
                probe_rates.append(len(ids) / (time.perf_counter() - start))
                assert summary.ok == len(ids), summary.by_kind()
            probe_rate, bare_rate = statistics.median(probe_rates), statistics.median(bare_rates)
            rows.append((concurrency, len(ids), bare_rate, probe_rate, probe_rate / bare_rate))
        print_table(
            f"Probe throughput against {instances} ipycam instances ({len(ids)} cameras, authenticated, "
            "median of 3; ipycam answers in Python on the same 2 cores)",
            ("concurrency", "cameras", "bare time requests/s (baseline)", "full probes/s", "x baseline"),
            rows,
        )
    finally:
        for cam in cams:
            cam.stop()


async def _bare_time_requests(cams: list[IpyCam], total: int, concurrency: int) -> float:
    body = (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
        '<GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>'
    )
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, session: aiohttp.ClientSession) -> None:
        async with gate, session.post(cams[i % len(cams)].onvif_url, data=body) as reply:
            await reply.read()

    start = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await _gather([one(i, session) for i in range(total)])
    return time.perf_counter() - start


async def _gather(tasks: list[Awaitable[Any]]) -> None:
    await asyncio.gather(*tasks)


def main(argv: list[str]) -> None:
    """Run the registry benchmarks and print their tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_registry", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, requests and probes")
    parser.add_argument("--only", choices=("import", "listing", "probe"), action="append")
    args = parser.parse_args(argv)
    only = set(args.only or ("import", "listing", "probe"))
    # httpx logs every request at INFO: thousands of lines around the tables.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    import tempfile

    with redis_server_url() as url, tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        if "import" in only:
            bench_import(url, repeats=1 if args.quick else 3)
        if "listing" in only:
            bench_listing(url, requests_per_client=5 if args.quick else 25, tmp=Path(tmp))
        if "probe" in only:
            bench_probes(
                url,
                instances=3 if args.quick else 4,
                per_instance=5 if args.quick else 10,
                concurrencies=[1, 8] if args.quick else [1, 4, 16],
            )


if __name__ == "__main__":
    main(sys.argv[1:])
