"""`sharpeyes cameras ...`: import, export, probe and discover cameras; re-encrypt their passwords.

These talk to Redis directly (like `sharpeyes tokens`), as the server's own user; every change is audited
with the actor ``cli:<user>``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Any

import redis

from api.auth import cli_actor
from config.settings import Settings
from ingest.bulk_probe import ProbeSummary, probe_many
from ingest.camera_files import CameraFileError, FileFormat, export_csv, export_json, sniff_format
from ingest.discovery import DiscoveryError, discover
from ingest.importer import ImportReport, run_import
from ingest.onvif_probe import ProbeConfig
from ingest.registry import CameraRegistry, RekeySummary, StreamPolicy
from ingest.secretbox import SecretKeyError, key_path, load_secret_box
from sharpeyes.common import check_redis, redis_url
from sharpeyes.progress import ProgressBar

# Errors printed to the terminal; the rest go to --errors FILE.
SHOWN_ERRORS = 50

IMPORT_EPILOG = """\
CSV columns (header line first; any order; only external_id or id is required):
  id, external_id, name, lat, lon, address, district, grid_cell, stream_url, main_stream_url,
  onvif_url, username, password, tags, enabled, zones, schedule
A new camera needs external_id, name, lat, lon and stream_url or onvif_url. An empty cell keeps the
camera's current value (exports carry no passwords, so they import back without touching them).
tags: separated by ; , or |. zones and schedule: JSON, as the API takes them. JSON files: a list of
cameras (or {"cameras": [...]}) in the API's shape.
Exit status: 0 all rows imported, 1 some rows bad (listed), 2 nothing imported.
"""


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register this module's subcommands (each sets ``func(settings, args) -> int``)."""
    cameras = sub.add_parser("cameras", help="camera registry: import, export, probe, discover, rekey")
    csub = cameras.add_subparsers(dest="cameras_cmd", required=True, metavar="ACTION")

    imp = csub.add_parser(
        "import",
        help="import cameras from a CSV or JSON file (upsert by external id)",
        description="Validate every row, report bad rows by line, field and reason, upsert the good ones.",
        epilog=IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", type=Path, help="the file ('-' reads standard input)")
    imp.add_argument("--format", choices=[f.value for f in FileFormat], help="default: from the file's content")
    imp.add_argument("--dry-run", action="store_true", help="validate and report only; write nothing")
    imp.add_argument("--strict", action="store_true", help="write nothing if any row is bad")
    imp.add_argument("--probe", action="store_true", help="then probe the imported cameras with an ONVIF address")
    imp.add_argument("--concurrency", type=int, help="cameras probed at once (default: probe_concurrency)")
    imp.add_argument("--errors", type=Path, help="write every bad row to this CSV file")
    imp.set_defaults(func=cmd_import)

    exp = csub.add_parser("export", help="write every camera as an import file (no passwords)")
    exp.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    exp.add_argument("--format", choices=[f.value for f in FileFormat], default="csv")
    exp.set_defaults(func=cmd_export)

    probe = csub.add_parser(
        "probe",
        help="probe cameras over ONVIF and store what they report",
        description="Probe the given cameras (ids or external ids), or --unprobed, or --all.",
    )
    probe.add_argument("camera_ids", nargs="*", metavar="CAMERA_ID", help="camera ids (cam_...)")
    probe.add_argument("--external-id", action="append", default=[], help="a camera by its external id (repeatable)")
    probe.add_argument("--unprobed", action="store_true", help="every camera with an ONVIF address never probed")
    probe.add_argument("--all", action="store_true", help="every camera with an ONVIF address")
    probe.add_argument(
        "--streams",
        choices=[p.value for p in StreamPolicy],
        default=StreamPolicy.FILL.value,
        help="keep: record only; fill: set missing stream URLs (default); replace: take the probe's choice",
    )
    probe.add_argument("--concurrency", type=int, help="cameras probed at once (default: probe_concurrency)")
    probe.set_defaults(func=cmd_probe)

    disc = csub.add_parser(
        "discover",
        help="find ONVIF cameras on one network segment (WS-Discovery) and list them",
        description="Sends one WS-Discovery probe out of INTERFACE (multicast, TTL 1) and lists the devices that "
        "answer. Nothing is registered: check the list, fill in names and positions, then import it.",
    )
    disc.add_argument("--interface", required=True, help="the camera network's interface, e.g. eth1 (required)")
    disc.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for answers (default 3)")
    disc.add_argument("--csv", type=Path, help="also write the devices as an import file to complete and import")
    disc.add_argument("--json", action="store_true", help="print JSON instead of a table")
    disc.set_defaults(func=cmd_discover)

    rekey = csub.add_parser(
        "rekey",
        help="re-encrypt every stored camera password with the newest secret key",
        description="After putting a new key on the first line of the secret key file (the old ones below it) on "
        "every host: re-encrypts each password not yet on the newest key, and makes it the key new passwords use. "
        "Safe to run again; when it reports nothing left on an older key and nothing unreadable, delete the older "
        "lines. See docs/registry.md, 'Rotating the key'.",
    )
    rekey.set_defaults(func=cmd_rekey)


def _registry(settings: Settings, url: str) -> CameraRegistry:
    check_redis(url)
    try:
        box = load_secret_box(settings)
    except SecretKeyError as exc:
        raise SystemExit(f"error: {exc}") from None
    return CameraRegistry(redis.Redis.from_url(url), box)


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import a camera file; prints a summary, bad rows, and the probe outcome with --probe."""
    data = sys.stdin.buffer.read() if str(args.file) == "-" else _read(args.file)
    hint = {".csv": "text/csv", ".json": "application/json"}.get(args.file.suffix.lower())
    fmt = FileFormat(args.format) if args.format else sniff_format(data, hint)
    with redis_url(settings) as url:
        registry = _registry(settings, url)
        bar = ProgressBar()
        try:
            result = run_import(
                registry,
                data,
                fmt,
                cli_actor(),
                batch_size=settings.import_batch_size,
                dry_run=args.dry_run,
                strict=args.strict,
                progress=bar.update,
            )
        except CameraFileError as exc:
            bar.close()
            print(f"error: {args.file}: {exc}", file=sys.stderr)
            return 2
        bar.close()
        report = result.report
        _print_report(report, args.errors)
        if args.probe and report.written:
            never = registry.probes(result.imported_ids)
            ids = sorted(set(result.changed_ids) | {i for i in result.imported_ids if i not in never})
            _print_probe(_probe(settings, registry, ids, StreamPolicy.FILL, args.concurrency))
    if not report.written and not args.dry_run:
        return 2
    return 1 if report.errors else 0


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from None


def _print_report(report: ImportReport, errors_file: Path | None) -> None:
    verb = "would be" if report.dry_run else "were"
    print(
        f"{report.rows:,} rows: {report.created:,} cameras {verb} created, {report.updated:,} updated, "
        f"{report.unchanged:,} unchanged; {report.failed:,} rows bad"
    )
    if report.errors and not report.written and not report.dry_run:
        print("nothing was written (--strict, or no good rows): fix the rows below and import again")
    for err in report.errors[:SHOWN_ERRORS]:
        who = f" ({err.external_id})" if err.external_id else ""
        print(f"  line {err.line}{who}: {err.field}: {err.reason}", file=sys.stderr)
    if len(report.errors) > SHOWN_ERRORS:
        more = len(report.errors) - SHOWN_ERRORS
        hint = f"all in {errors_file}" if errors_file else "use --errors FILE to save them all"
        print(f"  ... and {more:,} more ({hint})", file=sys.stderr)
    if errors_file is not None:
        with errors_file.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["line", "external_id", "field", "reason"])
            writer.writerows([e.line, e.external_id or "", e.field, e.reason] for e in report.errors)


def _probe(
    settings: Settings, registry: CameraRegistry, ids: list[str], policy: StreamPolicy, concurrency: int | None
) -> ProbeSummary:
    try:
        config = ProbeConfig.from_settings(settings)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    bar = ProgressBar()

    def progress(done: int, total: int) -> None:
        bar.update("probing", done, total)

    try:
        return asyncio.run(
            probe_many(
                registry,
                ids,
                config,
                cli_actor(),
                concurrency=concurrency or settings.probe_concurrency,
                policy=policy,
                progress=progress,
            )
        )
    finally:
        bar.close()


def _print_probe(summary: ProbeSummary) -> None:
    print(f"probed {summary.probed:,} cameras: {summary.ok:,} ok, {len(summary.failures):,} failed")
    for kind, count in sorted(summary.by_kind().items()):
        print(f"  {kind}: {count:,}")
    for failure in summary.failures[:SHOWN_ERRORS]:
        who = failure.external_id or failure.camera_id
        print(f"  {who}: {failure.kind.value}: {failure.message}", file=sys.stderr)


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    """Write every camera as CSV or JSON."""
    with redis_url(settings) as url:
        check_redis(url)
        cameras = CameraRegistry(redis.Redis.from_url(url)).snapshot().cameras
    body = export_csv(cameras) if args.format == FileFormat.CSV.value else export_json(cameras)
    if args.output is None:
        sys.stdout.buffer.write(body)
    else:
        args.output.write_bytes(body)
        print(f"{len(cameras):,} cameras written to {args.output}", file=sys.stderr)
    return 0


def cmd_probe(settings: Settings, args: argparse.Namespace) -> int:
    """Probe cameras and store the results."""
    with redis_url(settings) as url:
        registry = _registry(settings, url)
        ids = list(args.camera_ids)
        missing = [
            e for e, i in zip(args.external_id, registry.ids_of_external(args.external_id), strict=True) if not i
        ]
        if missing:
            raise SystemExit(f"error: no camera with external id {', '.join(repr(m) for m in missing)}")
        ids += [i for i in registry.ids_of_external(args.external_id) if i]
        if args.all or args.unprobed:
            candidates = [c.id for c in registry.snapshot().cameras if c.onvif_url]
            if args.unprobed:
                known = registry.probes(candidates)
                candidates = [i for i in candidates if i not in known]
            ids += candidates
        if not ids:
            raise SystemExit("error: name cameras to probe, or use --unprobed or --all")
        summary = _probe(settings, registry, sorted(set(ids)), StreamPolicy(args.streams), args.concurrency)
    _print_probe(summary)
    return 1 if summary.failures else 0


def cmd_rekey(settings: Settings, args: argparse.Namespace) -> int:
    """Re-encrypt stored passwords with the newest key; exit 1 if some password could not be read."""
    with redis_url(settings) as url:
        registry = _registry(settings, url)
        bar = ProgressBar()
        try:
            summary = registry.rekey(cli_actor(), progress=bar.update)
        except SecretKeyError as exc:
            raise SystemExit(f"error: {exc}") from None
        finally:
            bar.close()
    _print_rekey(summary, str(key_path(settings)))
    return 1 if summary.failed else 0


def _print_rekey(summary: RekeySummary, path: str) -> None:
    print(
        f"{summary.rekeyed:,} camera passwords re-encrypted with the key {summary.key}, {summary.current:,} were on "
        f"it already, {len(summary.failed):,} could not be decrypted"
    )
    for camera_id in summary.failed[:SHOWN_ERRORS]:
        print(f"  {camera_id}: no key in {path} decrypts its password: set it again", file=sys.stderr)
    if not summary.failed:
        print(f"every password is on the newest key: the older keys in {path} can be deleted on every host")


def cmd_discover(settings: Settings, args: argparse.Namespace) -> int:
    """List the ONVIF devices that answer a WS-Discovery probe on one interface."""
    try:
        devices = discover(args.interface, args.timeout)
    except DiscoveryError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.json:
        print(json.dumps([_device_json(d) for d in devices], indent=1))
    else:
        print(f"{len(devices)} device(s) answered on {args.interface} within {args.timeout:g} s")
        for d in devices:
            name, hardware = d.scope("name") or "-", d.scope("hardware") or ""
            print(f"  {d.sender:<16} {d.onvif_address or '-':<22} {name:<24} {hardware}")
    if args.csv is not None:
        with args.csv.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["external_id", "name", "lat", "lon", "onvif_url", "username", "password"])
            for d in devices:
                writer.writerow(["", d.scope("name") or "", "", "", d.onvif_address or "", "", ""])
        print(f"wrote {args.csv}: fill in external_id, name, lat, lon and credentials, then import it", file=sys.stderr)
    return 0


def _device_json(device: Any) -> dict[str, Any]:
    return {
        "endpoint": device.endpoint,
        "sender": device.sender,
        "onvif_address": device.onvif_address,
        "name": device.scope("name"),
        "hardware": device.scope("hardware"),
        "xaddrs": list(device.xaddrs),
        "scopes": list(device.scopes),
    }
