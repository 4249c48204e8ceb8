"""Shared by the export tests."""

from __future__ import annotations

from pathlib import Path

from acom.export import pipeline


def edited_board(tmp_path: Path, base: str, **changes: str) -> Path:
    """A copy of board profile ``base`` with some top-level fields replaced (values as TOML literals)."""
    text = (Path(pipeline.__file__).parent.parent / "boards" / f"{base}.toml").read_text()
    lines = [f"{k} = {changes[k]}" if (k := line.split("=")[0].strip()) in changes else line
             for line in text.splitlines()]
    path = tmp_path / "board.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
