"""Run every benchmark in turn: `python -m benchmarks [NAME ...]` (names: ingest, accuracy, registry, incidents)."""

from __future__ import annotations

import importlib
import sys

ALL = ("ingest", "accuracy", "registry", "incidents")


def main(argv: list[str]) -> int:
    names = argv or list(ALL)
    for name in names:
        if name not in ALL:
            print(f"unknown benchmark {name!r}; known: {', '.join(ALL)}", file=sys.stderr)
            return 2
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
        except ModuleNotFoundError as exc:
            print(f"benchmark {name!r} is not written yet ({exc})", file=sys.stderr)
            continue
        print(f"\n## benchmark: {name}", flush=True)
        module.main([])
    return 0


raise SystemExit(main(sys.argv[1:]))
