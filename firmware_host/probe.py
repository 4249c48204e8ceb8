"""Writing a Cortex-M bundle's firmware through a debug probe with pyOCD: the image (its Intel hex) checked
against the target's memory map, programmed, read back and compared, and the core reset.

The target type comes from the board profile's ``[programmer]`` table. The image must lie in the target's flash
and RAM: the bundle's firmware is linked for the board's emulated machine (the MPS2/MPS3 memory map QEMU
models, docs/firmware.md); a vendor board needs the platform port that docs/firmware.md describes, and an image
linked for it, before it can be flashed.
"""

from __future__ import annotations

from pathlib import Path

from acom.boards import Board
from acom.errors import AcomError
from acom.runtime.manifest import Manifest

Segment = tuple[int, bytes]  # load address, bytes


def hex_segments(path: Path) -> list[Segment]:
    """The contiguous runs of an Intel hex file (intelhex, a pyOCD dependency)."""
    from intelhex import HexRecordError, IntelHex
    try:
        ih = IntelHex(str(path))
    except (HexRecordError, OSError) as e:
        raise AcomError(f"{path}: not a readable Intel hex image ({e})") from None
    return [(start, ih.tobinstr(start=start, end=end - 1)) for start, end in ih.segments()]


def target_regions(name: str) -> list[tuple[str, int, int, bool]]:
    """(name, start, end inclusive, is flash) of pyOCD's built-in target `name`; AcomError if it has none."""
    from pyocd.target import TARGET
    cls = TARGET.get(name)
    if cls is None:
        raise AcomError(f"pyOCD has no built-in target {name!r} (the board profile's programmer.pyocd_target); "
                        f"a pack target needs `pyocd pack install {name}` first")
    return [(r.name, r.start, r.end, r.is_flash) for r in cls.MEMORY_MAP]


def check_fits(segments: list[Segment], regions: list[tuple[str, int, int, bool]], image: Path, target: str) -> None:
    """AcomError unless every segment lies in one flash region of the target (what a probe can write to keep)."""
    for start, data in segments:
        end = start + len(data) - 1
        if not any(is_flash and lo <= start and end <= hi for _, lo, hi, is_flash in regions):
            flash = ", ".join(f"{n} {lo:#010x}-{hi:#010x}" for n, lo, hi, f in regions if f)
            raise AcomError(f"{image}: bytes at {start:#010x}-{end:#010x} are outside {target}'s flash ({flash}): "
                            "the image is linked for the emulated machine; a board of this kind needs its own "
                            "platform port and memory map (docs/firmware.md)")


def open_session(target: str, probe: str | None):
    """A pyOCD session on the probe `probe` (unique id) or the only one attached; AcomError naming the probe
    kinds searched when there is none."""
    from pyocd.core.helpers import ConnectHelper
    from pyocd.probe.aggregator import PROBE_CLASSES
    session = ConnectHelper.session_with_chosen_probe(unique_id=probe, target_override=target, blocking=False,
                                                      return_first=probe is None, options={"frequency": 4_000_000})
    if session is None:
        kinds = ", ".join(sorted(PROBE_CLASSES))
        raise AcomError(f"no debug probe{' ' + probe if probe else ''} found (pyOCD searched USB and its probe "
                        f"plugins: {kinds}); connect the board's probe (ST-Link, CMSIS-DAP/DAPLink, J-Link) or run "
                        "it emulated with --emulate")
    return session


def program(session, segments: list[Segment], loader_factory=None) -> None:
    """Write the segments to flash (pyOCD's FlashLoader, or `loader_factory(session)`), read them back, reset the
    core; AcomError if a byte differs."""
    if loader_factory is None:
        from pyocd.flash.loader import FlashLoader
        loader = FlashLoader(session, chip_erase="sector")
    else:
        loader = loader_factory(session)
    for start, data in segments:
        loader.add_data(start, list(data))
    loader.commit()
    target = session.target
    for start, data in segments:
        back = bytes(target.read_memory_block8(start, len(data)))
        if back != data:
            first = next(i for i in range(len(data)) if back[i] != data[i])
            raise AcomError(f"verify failed: the byte at {start + first:#010x} reads {back[first]:#04x}, "
                            f"written {data[first]:#04x}")
    target.reset()


def flash_bundle(bundle: Path, manifest: Manifest, board: Board, probe: str | None, session_factory=open_session,
                 loader_factory=None) -> dict:
    """Write `bundle`'s firmware to the board through a probe; what was done. `session_factory(target, probe)`
    gives the pyOCD session and `loader_factory(session)` its flash loader (a test passes its own: no probe
    can be attached here)."""
    fw = manifest.firmware
    if fw is None or not fw.written:
        why = fw.reason if fw is not None else "exported before acom-export built firmware"
        raise AcomError(f"{bundle}: no firmware image in this bundle ({why}); export it again for {board.name}")
    if board.programmer is None:
        raise AcomError(f"board {board.name}: no [programmer] in its profile, so no debug-probe target: "
                        f"{board.description} is programmed its own way; run it emulated with --emulate")
    image = bundle / fw.hex
    segments = hex_segments(image)
    target = board.programmer.pyocd_target
    check_fits(segments, target_regions(target), image, target)
    session = session_factory(target, probe)
    with session:
        program(session, segments, loader_factory)
        probe_name = session.probe.description
    return {"image": str(image), "bytes": sum(len(d) for _, d in segments), "target": target, "probe": probe_name}
