"""`sharpeyes detect`: the workers' detectors run offline over a video file."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register this module's subcommands (each sets ``func(settings, args) -> int``)."""
