"""Building the device's C (firmware_host/c/) for a board with the top-level CMakeLists.txt: the board's cmake
options from its profile (boards/NAME.toml ``[emulator]``), configure and build, the program (and for a
microcontroller, on request, its ``.bin`` and ``.hex``) copied out. It sits in the export layer because
``acom-export`` builds an MCU bundle's firmware (export/firmware.py); ``acom.firmware_host.cbuild`` re-exports it
beside the emulator commands.

- ``host``: this machine's gcc, no toolchain file.
- Linux boards (Raspberry Pis): a static aarch64 binary (firmware_host/cmake/aarch64-linux-gnu.cmake).
- Microcontrollers: bare-metal firmware (firmware_host/cmake/arm-none-eabi.cmake; c/platform/cortex_m_start.c's
  vector table, c/platform/cortex_m.ld with the profile's memory map).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from acom.boards import load_board
from acom.errors import AcomError
from acom.export import c_constants
from acom.export.c_bundle import CMAKE_DIR  # one toolchain file per board kind

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the acom package: the top-level CMakeLists.txt


def tool(name: str) -> str:
    """The path of an executable, or an AcomError that says what installs it."""
    path = shutil.which(name)
    if path is None:
        raise AcomError(f"{name} not found: `make setup` installs it (Debian packages in the Makefile's DEBS)")
    return path


def cmake() -> str:
    """cmake beside this Python (the venv's, from requirements.txt) or on PATH; AcomError if neither."""
    beside = Path(sys.executable).parent / "cmake"
    if beside.is_file():
        return str(beside)
    path = shutil.which("cmake")
    if path is None:
        raise AcomError("cmake not found beside this Python or on PATH: `make setup` installs it (requirements.txt)")
    return path


def kind(board: str) -> str:
    """"host", "linux" or "mcu"."""
    return "host" if board == "host" else load_board(board).kind


def board_options(board: str, flash_images: bool = False) -> list[str]:
    """The cmake -D options that pick the board: its toolchain file, core, FPU and (mcu) memory map, and whether
    to write the .bin and .hex beside the ELF (`flash_images`)."""
    if kind(board) == "host":
        return [f"-DCMAKE_C_COMPILER={tool('gcc')}", "-DACOM_KIND=host"]
    b = load_board(board)
    emu = b.emulator
    tool(emu.toolchain.replace("g++", "gcc"))  # the sources are C: the C driver of the same toolchain
    toolchain = CMAKE_DIR / f"{emu.toolchain_prefix}.cmake"
    if not toolchain.is_file():
        known = ", ".join(sorted(p.stem for p in CMAKE_DIR.glob("*-*.cmake")))
        raise AcomError(f"board {board}: no toolchain file for {emu.toolchain} (known: {known})")
    opts = [f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", f"-DACOM_KIND={b.kind}", f"-DACOM_CPU={emu.cpu}"]
    if b.kind == "mcu":
        # QEMU loads the ELF; the .bin (objcopy) spans every byte from the vector table at 0 to the image's end
        opts += [f"-DACOM_FPU={emu.fpu or ''}", f"-DACOM_UART_BASE={emu.uart_base:#x}",
                 f"-DACOM_RAM_ORIGIN={emu.ram_origin:#x}", f"-DACOM_RAM_LENGTH={emu.ram_length:#x}",
                 f"-DACOM_FLASH_IMAGES={'ON' if flash_images else 'OFF'}"]
    return opts


def build(board: str, sources: list[Path], out: Path, include: Path, extra_include: Path | None = None,
          defines: tuple[str, ...] = (), flash_images: bool = False) -> Path:
    """Compile the library, `sources` and the board's platform files into `out` (a binary or an ELF) with
    CMake, in a build folder beside `out`; `include` holds the generated headers (acom_wire_constants.h is
    written there too), `extra_include` (searched before the library's) a bundle's c/; `defines`: NAME=VALUE
    for the preprocessor. With `flash_images` (microcontrollers) `out`.bin and `out`.hex are written too.
    AcomError with the compiler's message if it fails."""
    c_constants.write(include)
    work, opts = out.parent / f"{out.name}.cmake", board_options(board, flash_images)
    stamp = work / "acom-board.txt"  # a folder configured for another board keeps its compiler: start afresh
    if work.is_dir() and (not stamp.is_file() or stamp.read_text() != "\n".join(opts)):
        shutil.rmtree(work)
    dirs = [include, *([extra_include] if extra_include else [])]
    configure = [cmake(), "-S", str(PACKAGE_DIR), "-B", str(work), *opts, f"-DACOM_APP_NAME={out.name}",
                 f"-DACOM_APP_SOURCES={_list(sources)}", f"-DACOM_INCLUDE_DIRS={_list(dirs)}",
                 f"-DACOM_DEFINES={';'.join(defines)}", f"-DACOM_GENERATED_DIR={Path(include).resolve()}"]
    _run(configure, out.name, board)
    stamp.write_text("\n".join(opts))
    _run([configure[0], "--build", str(work), "-j", "2"], out.name, board)
    shutil.copy2(work / out.name, out)
    if flash_images and kind(board) == "mcu":
        for suffix in (".bin", ".hex"):
            shutil.copy2(work / f"{out.name}{suffix}", out.parent / f"{out.name}{suffix}")
    return out


def _run(cmd: list[str], name: str, board: str) -> None:
    """One cmake step; AcomError with what CMake or the compiler said (make's own lines left out)."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        said = "\n".join(x for x in (done.stderr or done.stdout).splitlines() if not x.startswith(("gmake", "make")))
        raise AcomError(f"building {name} for {board} failed: {said[-800:]}")


def _list(paths: list[Path]) -> str:
    """Paths as one CMake list; a path holding ';' would split in two, so it is refused."""
    texts = [str(Path(p).resolve()) for p in paths]
    bad = [t for t in texts if ";" in t]
    if bad:
        raise AcomError(f"{bad[0]}: a source path may not contain ';' (CMake's list separator)")
    return ";".join(texts)
