"""What an MCU bundle's ``c/`` folder takes from the device library (firmware_host/c/): its sources and headers,
the generated wire constants (acom_wire_constants.h) and a ``CMakeLists.txt`` (from cmake/bundle.cmake.in)
that builds the folder into a static library, ``acom_bundle``, for a firmware to ``add_subdirectory()``."""

from __future__ import annotations

from pathlib import Path

from acom.boards import Board
from acom.export import c_constants

# the device library's files, package data of acom.firmware_host (read here, not imported)
FIRMWARE = Path(__file__).resolve().parents[1] / "firmware_host"
C_DIR, CMAKE_DIR = FIRMWARE / "c", FIRMWARE / "cmake"

LIBRARY_FILES = ("acom_kernels.h", "acom_kernels.c", "acom_frontend.h", "acom_frontend.c", "acom_wire.h",
                 "acom_wire.c", "acom_sha256.h", "acom_sha256.c", "acom_range.h", "acom_range.c")
TEMPLATE = CMAKE_DIR / "bundle.cmake.in"


def cmake_lists(board: Board) -> str:
    """The bundle's c/CMakeLists.txt; its usage comment names `board`'s toolchain file, core and FPU."""
    emu = board.emulator
    options = f"-DACOM_CPU={emu.cpu}" + (f" -DACOM_FPU={emu.fpu}" if emu.fpu else "")
    text = TEMPLATE.read_text()
    for key, value in (("@BOARD@", board.name), ("@TOOLCHAIN@", emu.toolchain_prefix),
                       ("@CORE_OPTIONS@", options)):
        text = text.replace(key, value)
    return text


def library_files(board: Board) -> dict[str, bytes]:
    """{"c/NAME": bytes}: the library's files, acom_wire_constants.h and CMakeLists.txt for `board`."""
    files = {f"c/{n}": (C_DIR / n).read_bytes() for n in LIBRARY_FILES}
    files[f"c/{c_constants.HEADER_NAME}"] = c_constants.render().encode()
    files["c/CMakeLists.txt"] = cmake_lists(board).encode()
    return files
