"""Build the device's C sources (firmware_host/c/) for a board and give the command that runs the result under
the board's emulator (boards/NAME.toml ``[emulator]``), or on this machine for ``host``.

- ``host``: this machine's gcc.
- Linux boards (Raspberry Pis): a static aarch64 binary from the profile's toolchain, run by ``qemu-aarch64``.
- Microcontrollers: bare-metal firmware (c/test/cortex_m_start.c's vector table, c/test/cortex_m.ld) run by
  ``qemu-system-arm`` on the profile's MPS2/MPS3 image; it reports through Arm semihosting (to stdout here)
  and its UART is the image's first CMSDK UART.
"""

from __future__ import annotations

import bisect
import shutil
import subprocess
from pathlib import Path

from acom.boards import load_board
from acom.errors import AcomError

C_DIR = Path(__file__).resolve().parent / "c"
TEST_DIR = C_DIR / "test"
# -ffp-contract=off: no fused multiply-adds, so the range coder's float64 sums round as numpy's do (acom_range.h)
FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]
LIBRARY = [C_DIR / "acom_wire.c", C_DIR / "acom_sha256.c", C_DIR / "acom_range.c", TEST_DIR / "io_numbers.c"]
# UART0 of each QEMU image (a CMSDK APB UART): Arm AN385/AN386/AN500 and AN547 application notes' memory maps
UART_BASE = {"mps2-an386": 0x40004000, "mps2-an500": 0x40004000, "mps3-an547": 0x49303000}
# the floating-point unit of each core, used with the hard-float ABI (the start-up code turns it on): the M4F's
# single-precision FPv4, the M7's double-precision FPv5 (STM32H7), the M55's own (auto: FPv5 with MVE); without
# these the compiler emulates every float operation in software (the C front end took ~8x the instructions)
FPU = {"cortex-m4": "fpv4-sp-d16", "cortex-m7": "fpv5-d16", "cortex-m55": "auto"}
# (origin, length) of the RAM the program runs from, after the 1 KiB kept for the vector table at 0: the mps2
# images' 4 MiB ZBT SSRAM1 at 0; mps3-an547's 2 MiB SRAM at 0x01000000 (its ITCM at 0 holds only 512 KiB,
# less than the ASR graph with test audio)
RAM = {"mps2-an386": (0x400, 0x3FFC00), "mps2-an500": (0x400, 0x3FFC00), "mps3-an547": (0x01000000, 0x200000)}


def c_array(values) -> str:
    """A C initializer of unsigned integers (bytes or numbers): "{1u,2u}"; "{0}" when empty (C has no {})."""
    values = [int(v) for v in values]
    return "{" + ",".join(f"{v}u" for v in values) + "}" if values else "{0}"


def tool(name: str) -> str:
    """The path of an executable, or an AcomError that says what installs it."""
    path = shutil.which(name)
    if path is None:
        raise AcomError(f"{name} not found: `make setup` installs it (Debian packages in the Makefile's DEBS)")
    return path


def kind(board: str) -> str:
    """"host", "linux" or "mcu"."""
    return "host" if board == "host" else load_board(board).kind


def build(board: str, sources: list[Path], out: Path, include: Path, extra_include: Path | None = None,
          defines: tuple[str, ...] = ()) -> Path:
    """Compile the library, `sources` and the board's platform files into `out` (a binary or an ELF);
    `include` holds the generated headers, `extra_include` (searched before the library's) a bundle's c/;
    `defines`: NAME=VALUE for the preprocessor. AcomError with the compiler's message if it fails."""
    srcs = [str(p) for p in [*LIBRARY, *sources]]
    common = [*FLAGS, *(f"-D{d}" for d in defines), "-I", str(include),
              *(["-I", str(extra_include)] if extra_include else []), "-I", str(C_DIR)]
    k = kind(board)
    if k == "host":
        cmd = [tool("gcc"), *common, *srcs, str(TEST_DIR / "io_stdio.c")]
    else:
        emu = load_board(board).emulator
        cc = tool(emu.toolchain.replace("g++", "gcc"))  # the sources are C: the C driver of the same toolchain
        if k == "linux":
            cmd = [cc, *common, f"-mcpu={emu.cpu}", "-static", *srcs, str(TEST_DIR / "io_stdio.c")]
        else:
            if emu.machine not in UART_BASE or emu.machine not in RAM:
                raise AcomError(f"board {board}: no UART address known for QEMU machine {emu.machine!r} "
                                f"(known: {', '.join(UART_BASE)})")
            origin, length = RAM[emu.machine]
            fpu = [f"-mfpu={FPU[emu.cpu]}", "-mfloat-abi=hard"] if emu.cpu in FPU else []
            cmd = [cc, *common, f"-mcpu={emu.cpu}", *fpu, "-mthumb", "-ffreestanding", "-nostartfiles",
                   "--specs=nano.specs",
                   f"-DUART_BASE={UART_BASE[emu.machine]:#x}u", f"-Wl,--defsym=ACOM_RAM_ORIGIN={origin:#x}",
                   f"-Wl,--defsym=ACOM_RAM_LENGTH={length:#x}", "-T", str(TEST_DIR / "cortex_m.ld"), *srcs,
                   str(TEST_DIR / "io_semihost.c"), str(TEST_DIR / "cortex_m_start.c")]
    done = subprocess.run([*cmd, "-lm", "-o", str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise AcomError(f"building {out.name} for {board} failed: {done.stderr[-800:]}")
    return out


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
    """c/test/qemu_insn.c built into `folder`: a QEMU plugin that counts executed guest instructions."""
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
