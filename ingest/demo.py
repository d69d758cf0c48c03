"""Demo cameras: looped local clips with real motion, registered idempotently by external id."""

from __future__ import annotations

from pathlib import Path

from detectors.zones import Zone, ZoneKind
from ingest.cameras import CameraSpec, Location
from ingest.registry import CameraRegistry
from ingest.synthetic import standard_clip

VTEST_CLIP = "vtest-excerpt.mp4"


def demo_specs(repo_demo_dir: Path, work_dir: Path) -> list[CameraSpec]:
    """Specs of the demo cameras; synthetic clips are generated into ``work_dir`` on first use."""
    work_dir = work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    walker = standard_clip("walker", work_dir / "walker.mp4")
    vtest = (repo_demo_dir / VTEST_CLIP).resolve()
    lower = ((0.0, 0.45), (1.0, 0.45), (1.0, 1.0), (0.0, 1.0))
    specs = [
        CameraSpec(
            name="Campus walkway (OpenCV vtest)",
            external_id="demo-vtest",
            stream_url=vtest.as_uri(),
            location=Location(lat=52.3731, lon=4.8922, district="Centrum", grid_cell="C4"),
            zones=(
                Zone(name="walkway", polygon=lower),
                Zone(
                    name="upper rail",
                    kind=ZoneKind.EXCLUDE,
                    polygon=((0.0, 0.0), (1.0, 0.0), (1.0, 0.2), (0.0, 0.2)),
                ),
            ),
            tags=("demo",),
        ),
        CameraSpec(
            name="Plaza north (synthetic)",
            external_id="demo-plaza",
            stream_url=walker.as_uri(),
            location=Location(lat=52.3792, lon=4.9003, district="Centrum", grid_cell="C2"),
            zones=(Zone(name="plaza", polygon=((0.2, 0.2), (0.8, 0.2), (0.8, 0.9), (0.2, 0.9))),),
            tags=("demo",),
        ),
        CameraSpec(
            name="Depot gate (synthetic, privacy mask)",
            external_id="demo-depot",
            stream_url=walker.as_uri(),
            location=Location(lat=52.3600, lon=4.8700, district="West", grid_cell="W7"),
            zones=(
                Zone(name="gate", polygon=((0.0, 0.3), (1.0, 0.3), (1.0, 0.95), (0.0, 0.95))),
                Zone(
                    name="residence window",
                    kind=ZoneKind.PRIVACY,
                    polygon=((0.7, 0.0), (1.0, 0.0), (1.0, 0.25), (0.7, 0.25)),
                ),
            ),
            tags=("demo",),
        ),
    ]
    return specs


def install_demo(registry: CameraRegistry, specs: list[CameraSpec], actor: str = "demo") -> list[str]:
    """Register (or refresh) the demo cameras; returns their ids."""
    return [registry.upsert(spec, actor)[1].id for spec in specs]
