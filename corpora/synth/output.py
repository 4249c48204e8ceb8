"""Writing a generated set safely: build in a scratch folder beside the target, then rename it into place."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from acom.errors import DataError


def prepare_out(out: Path, marker: str, scratch_names: set[str]) -> Path:
    """A fresh scratch folder `OUT.tmp` for building a set that will replace `out`.

    `out` may be absent, empty, or a set this generator made (it holds `marker`, a relative path); anything
    else is refused, so a user's folder is never deleted. A scratch folder left by a failed run is removed
    only if it holds nothing but `scratch_names`.
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; give a new or empty folder")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise DataError(f"{out}: not empty and not a generated data set (no {marker}); give a new or empty "
                        "folder, or one this command wrote before")
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        if not tmp.is_dir() or not {p.name for p in tmp.iterdir()} <= scratch_names:
            raise DataError(f"{tmp}: exists and is not this generator's scratch folder; move it away")
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def finish_out(tmp: Path, out: Path) -> None:
    """Replace `out` with the completed scratch folder `tmp`."""
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def write_csv(path: Path, header: tuple[str, ...] | list[str], rows: list[list]) -> None:
    """A CSV file with `header` and `rows` (in the order given), '\\n' line ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
