"""Build the device's C sources (firmware_host/c/) for a board with the top-level CMakeLists.txt (``build`` and
``board_options`` live in ``acom.export.c_build``, which ``acom-export`` uses for a bundle's firmware, and are
re-exported here) and give the command that runs the result under the board's emulator (boards/NAME.toml
``[emulator]``), or on this machine for ``host``.

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
import subprocess
from pathlib import Path

from acom.boards import load_board
from acom.errors import AcomError
from acom.export.c_build import PACKAGE_DIR, board_options, build, cmake, kind, tool  # noqa: F401 (re-exported)
from acom.export.c_bundle import C_DIR, CMAKE_DIR  # noqa: F401 (the device library; one toolchain file per kind)

APP_DIR = C_DIR / "app"  # the device applications (send_codes.c, device_app.c, firmware_uart.c), audio in, transports
PLATFORM_DIR = C_DIR / "platform"  # start-up code, linker script, io.h on stdio or semihosting
TEST_DIR = C_DIR / "test"  # test drivers: wire vectors, stdin encoder, graph codes, the QEMU plugin


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


def count_instructions(cmd: list[str], plugin: Path, timeout: float = 600.0, by_block: bool = False,
                       program: int | None = None) -> tuple[str, int, dict[int, int]]:
    """Run a QEMU command (``run_command``'s) with the counting plugin: (its stdout, instructions executed,
    and with `by_block` the instructions per translated block's start address). `program`: the index in `cmd`
    of a user-mode QEMU's program, before which its options go (system mode takes them at the end). AcomError
    if it fails or QEMU does not report the count (a QEMU built without plugin support)."""
    options = ["-plugin", f"{plugin}{',tb=on' if by_block else ''}", "-d", "plugin"]
    at = len(cmd) if program is None else program
    run = subprocess.run([*cmd[:at], *options, *cmd[at:]], capture_output=True, text=True, timeout=timeout)
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
