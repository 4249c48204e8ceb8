"""Build the device's C sources (firmware_host/c/) for a board with the top-level CMakeLists.txt and give the
command that runs the result under the board's emulator (boards/NAME.toml ``[emulator]``), or on this machine
for ``host``.

- ``host``: this machine's gcc, no toolchain file.
- Linux boards (Raspberry Pis): a static aarch64 binary (firmware_host/cmake/aarch64-linux-gnu.cmake), run by
  ``qemu-aarch64``.
- Microcontrollers: bare-metal firmware (firmware_host/cmake/arm-none-eabi.cmake; c/platform/cortex_m_start.c's
  vector table, c/platform/cortex_m.ld with the profile's memory map) run by ``qemu-system-arm`` on the
  profile's MPS2/MPS3 image; it reports through Arm semihosting (to stdout here) and its UART is the image's
  first CMSDK UART.
"""

from __future__ import annotations

import bisect
import shutil
import subprocess
import sys
from pathlib import Path

from acom.boards import load_board
from acom.errors import AcomError
from acom.export import c_constants
from acom.export.c_bundle import C_DIR, CMAKE_DIR  # the device library; one toolchain file per board kind

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the acom package: the top-level CMakeLists.txt
APP_DIR = C_DIR / "app"  # the device application: send_codes.c, device_app.c, transports, io.h
PLATFORM_DIR = C_DIR / "platform"  # start-up code, linker script, io.h on stdio or semihosting
TEST_DIR = C_DIR / "test"  # test drivers: wire vectors, stdin encoder, graph codes, the QEMU plugin


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


def board_options(board: str) -> list[str]:
    """The cmake -D options that pick the board: its toolchain file, core, FPU and (mcu) memory map."""
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
        opts += [f"-DACOM_FPU={emu.fpu or ''}", f"-DACOM_UART_BASE={emu.uart_base:#x}",
                 f"-DACOM_RAM_ORIGIN={emu.ram_origin:#x}", f"-DACOM_RAM_LENGTH={emu.ram_length:#x}",
                 "-DACOM_FLASH_IMAGES=OFF"]  # QEMU loads the ELF; the .bin of mps3-an547 would span 16 MiB+
    return opts


def build(board: str, sources: list[Path], out: Path, include: Path, extra_include: Path | None = None,
          defines: tuple[str, ...] = ()) -> Path:
    """Compile the library, `sources` and the board's platform files into `out` (a binary or an ELF) with
    CMake, in a build folder beside `out`; `include` holds the generated headers (acom_wire_constants.h is
    written there too), `extra_include` (searched before the library's) a bundle's c/; `defines`: NAME=VALUE
    for the preprocessor. AcomError with the compiler's message if it fails."""
    c_constants.write(include)
    work, opts = out.parent / f"{out.name}.cmake", board_options(board)
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


def run_command(board: str, binary: Path, uart: str | None = None) -> list[str]:
    """How to run `binary` for `board`: directly, under qemu-aarch64, or under qemu-system-arm with
    semihosting to stdout and the UART on the host tty `uart` (None: no UART)."""
    k = kind(board)
    if k == "host":
        return [str(binary)]
    emu = load_board(board).emulator
    if k == "linux":
        return [tool(emu.program), "-cpu", emu.cpu, str(binary)]
    serial = ["-chardev", f"tty,id=uart,path={uart}", "-serial", "chardev:uart"] if uart else ["-serial", "none"]
    return [tool(emu.program), "-machine", emu.machine, "-cpu", emu.cpu, "-nographic", "-monitor", "none", *serial,
            "-chardev", "stdio,id=semi", "-semihosting-config", "enable=on,target=native,chardev=semi",
            "-kernel", str(binary)]


def insn_plugin(folder: Path) -> Path:
    """c/test/qemu_insn.c built into `folder`: a QEMU plugin that counts executed guest instructions. Built by
    this machine's gcc directly, not the CMake project: it is part of the emulator, not of any board's program."""
    out = folder / "libqemu_insn.so"
    done = subprocess.run([tool("gcc"), "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out),
                           str(TEST_DIR / "qemu_insn.c")], capture_output=True, text=True)
    if done.returncode != 0:
        raise AcomError(f"building the instruction-counting QEMU plugin failed: {done.stderr[-500:]}")
    return out


def count_instructions(cmd: list[str], plugin: Path, timeout: float = 600.0,
                       by_block: bool = False) -> tuple[str, int, dict[int, int]]:
    """Run a QEMU command (``run_command``'s) with the counting plugin: (its stdout, instructions executed,
    and with `by_block` the instructions per translated block's start address). AcomError if it fails or QEMU
    does not report the count (a QEMU built without plugin support)."""
    run = subprocess.run([*cmd, "-plugin", f"{plugin}{',tb=on' if by_block else ''}", "-d", "plugin"],
                         capture_output=True, text=True, timeout=timeout)
    counts = [int(x.split()[1]) for x in run.stderr.splitlines() if x.startswith("insns ")]
    if run.returncode != 0 or len(counts) != 1:
        raise AcomError(f"{' '.join(cmd[:3])} with the counting plugin: exit {run.returncode}, "
                        f"{(run.stdout + run.stderr)[-400:]}")
    blocks: dict[int, int] = {}
    for line in run.stderr.splitlines():
        if line.startswith("tb "):
            _, addr, n = line.split()
            blocks[int(addr, 16)] = blocks.get(int(addr, 16), 0) + int(n)
    return run.stdout, counts[0], blocks


def by_function(elf: Path, blocks: dict[int, int]) -> dict[str, int]:
    """Instructions per function of `elf` (arm-none-eabi-nm's symbols; a block counts for the function it
    starts in), from ``count_instructions(..., by_block=True)``'s blocks, largest first."""
    nm = subprocess.run([tool("arm-none-eabi-nm"), "-n", "--defined-only", str(elf)], capture_output=True,
                        text=True, check=True)
    syms = sorted((int(a, 16) & ~1, name) for a, kind_, name in
                  (line.split()[:3] for line in nm.stdout.splitlines() if len(line.split()) >= 3)
                  if kind_ in "Tt")
    starts = [a for a, _ in syms]
    out: dict[str, int] = {}
    for addr, n in blocks.items():
        i = bisect.bisect_right(starts, addr) - 1
        name = syms[i][1] if i >= 0 else "?"
        out[name] = out.get(name, 0) + n
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
