"""The README's settings table, generated from the model so the two cannot drift:
`python -m config.doc` rewrites the table between its markers in README.md."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_core import PydanticUndefined

from config.settings import ENV_PREFIX, Settings

BEGIN = "<!-- settings:begin -->"
END = "<!-- settings:end -->"


def settings_table() -> str:
    """A Markdown table of every setting: variable, default, meaning."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(unset)" if default is None or default is PydanticUndefined else f"`{default}`"
        lines.append(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(lines)


def render(readme: str) -> str:
    """``readme`` with the table between the markers replaced by the current one."""
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{settings_table()}\n{END}{tail}"


def main() -> int:
    """Rewrite README.md's settings table in place."""
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print(f"{path} has no {BEGIN} ... {END} markers", file=sys.stderr)
        return 1
    path.write_text(render(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
