"""acom.boards: one TOML profile per board (``boards/NAME.toml``) and its loader.

A profile states what the exporter needs to size and check an edge graph for a board: core, clock,
memory, the runtimes and transports it supports, the front end split (log-mel in the graph or in the
firmware), the audio window, the model's RAM/flash/compute budgets, the NPU (if any), the emulator used
to run it without hardware, and energy figures, each with its source.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from acom.errors import ExportError

__all__ = ["Board", "Emulator", "Figure", "Npu", "Programmer", "all_boards", "known_boards", "load_board",
           "BOARDS_DIR"]

BOARDS_DIR = Path(__file__).resolve().parent
KINDS = ("linux", "mcu")
FRONTENDS = ("graph", "firmware")
RUNTIMES = ("executorch-xnnpack", "litert", "tflite-micro", "ethos-u-vela")
TRANSPORTS = ("udp", "serial")
EMULATOR_MODES = ("user", "system")
NPU_ACCELERATORS = tuple(f"ethos-u55-{n}" for n in (32, 64, 128, 256)) + ("ethos-u65-256", "ethos-u65-512")
# Energy figures every profile of a kind must give (more may be added, each with its source).
REQUIRED_ENERGY = {
    "linux": ("active_power_w", "idle_power_w", "energy_per_mac_pj"),
    "mcu": ("active_power_mw", "uw_per_mhz", "energy_per_mac_pj"),
}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True, kw_only=True)
class Npu:
    """The board's neural accelerator, as vela names it."""

    accelerator: str
    """vela ``--accelerator-config``, e.g. ``ethos-u55-128``."""
    system_config: str
    """vela ``--system-config`` section of vela.ini, e.g. ``Ethos_U55_High_End_Embedded``."""
    memory_mode: str
    """vela ``--memory-mode`` section of vela.ini, e.g. ``Shared_Sram``."""


@dataclass(frozen=True, kw_only=True)
class Emulator:
    """How to run the board's binaries without the board."""

    program: str
    """Emulator executable: ``qemu-aarch64`` (user mode) or ``qemu-system-arm`` (a whole machine)."""
    mode: str
    """``user`` (runs one Linux binary) or ``system`` (boots firmware on an emulated machine)."""
    machine: str | None
    """QEMU ``-machine`` name for system mode (e.g. ``mps3-an547``); None in user mode."""
    cpu: str
    """QEMU CPU model, e.g. ``cortex-a72``, ``cortex-m55``."""
    toolchain: str
    """Cross compiler for the board, e.g. ``aarch64-linux-gnu-g++``, ``arm-none-eabi-gcc``."""
    uart_base: int | None = None
    """System mode: address of the machine's UART the firmware writes packets to; None in user mode."""
    ram_origin: int | None = None
    """System mode: start of the RAM the firmware runs from (the linker script's ACOM_RAM_ORIGIN)."""
    ram_length: int | None = None
    """System mode: bytes of that RAM (ACOM_RAM_LENGTH)."""
    fpu: str | None = None
    """System mode: the core's FPU as ``-mfpu`` names it (hard-float ABI), e.g. ``fpv5-d16``; None: soft float."""

    @property
    def toolchain_prefix(self) -> str:
        """The cross toolchain's target triple, e.g. ``arm-none-eabi`` (names its CMake toolchain file)."""
        return self.toolchain.rsplit("-", 1)[0]

    def command(self) -> str:
        """The emulator invocation without the binary, e.g. ``qemu-system-arm -machine mps3-an547``."""
        if self.mode == "system":
            return f"{self.program} -machine {self.machine}"
        return f"{self.program} -cpu {self.cpu}"


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One energy number and where it comes from."""

    value: float
    """The number, in the unit its name ends with (``_w``, ``_mw``, ``_pj``, ``uw_per_mhz``)."""
    source: str
    """The document it comes from, or the derivation of an estimate."""
    estimate: bool
    """True when the number is an estimate rather than a published measurement or datasheet value."""


@dataclass(frozen=True, kw_only=True)
class Programmer:
    """How `acom flash` writes a microcontroller's image through a debug probe."""

    pyocd_target: str
    """pyOCD's target type (``pyocd list --targets``), e.g. ``stm32h743xx``; its memory map bounds the image."""
    note: str | None = None
    """What a user must know, e.g. a CMSIS pack to install for a target pyOCD does not build in."""


@dataclass(frozen=True, kw_only=True)
class Board:
    """A board profile, validated. Sizes are KiB, clocks MHz, budgets per second of audio."""

    name: str
    """Short name, the file's stem for shipped profiles (``rpi4``, ``cortex-m55-u55``)."""
    description: str
    """One line for people."""
    kind: str
    """``linux`` (a process on an OS) or ``mcu`` (bare-metal firmware)."""
    core: str
    """CPU core(s), e.g. ``Cortex-A72 x4``."""
    clock_mhz: float
    """Core clock in MHz."""
    ram_kib: int
    """RAM in KiB (for linux boards: the smallest common variant)."""
    flash_kib: int
    """Flash in KiB (for linux boards: storage)."""
    runtimes: tuple[str, ...]
    """Runtimes the exporter may target, from RUNTIMES."""
    transports: tuple[str, ...]
    """Links the codes may travel over, from TRANSPORTS."""
    frontend: str
    """``graph``: log-mel inside the exported graph; ``firmware``: firmware computes log-mel, graph starts from
    features."""
    window_s: float
    """Fixed audio window in seconds that the graph is exported for."""
    model_ram_budget_kib: int
    """RAM the model (arena, buffers) may use, KiB."""
    model_flash_budget_kib: int
    """Flash the model (weights, program) may use, KiB."""
    macs_per_s_budget: int
    """Multiply-accumulates the edge part may spend per second of audio to stay real time."""
    npu: Npu | None
    """The accelerator, or None."""
    emulator: Emulator
    """How to run it without hardware."""
    energy: Mapping[str, Figure]
    """Energy figures by name (read-only), each with its source."""
    programmer: Programmer | None = None
    """A microcontroller's debug-probe target for `acom flash`, or None (no probe flashing)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field."""
        return {
            "name": self.name, "description": self.description, "kind": self.kind, "core": self.core,
            "clock_mhz": self.clock_mhz, "ram_kib": self.ram_kib, "flash_kib": self.flash_kib,
            "runtimes": list(self.runtimes), "transports": list(self.transports), "frontend": self.frontend,
            "window_s": self.window_s, "model_ram_budget_kib": self.model_ram_budget_kib,
            "model_flash_budget_kib": self.model_flash_budget_kib, "macs_per_s_budget": self.macs_per_s_budget,
            "npu": None if self.npu is None else asdict(self.npu),
            "emulator": {**asdict(self.emulator), "command": self.emulator.command()},
            "energy": {k: asdict(f) for k, f in self.energy.items()},
            "programmer": None if self.programmer is None else asdict(self.programmer),
        }


def known_boards() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.toml"))


def all_boards() -> list[Board]:
    """Every shipped profile, loaded and validated, sorted by name."""
    return [load_board(name) for name in known_boards()]


def load_board(name_or_path: str | Path) -> Board:
    """Load a shipped board by name (``rpi4``) or a profile from a ``.toml`` path; ExportError if bad."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise ExportError(f"board file {path} not found")
    else:
        path = BOARDS_DIR / f"{text}.toml"
        if not path.is_file():
            raise ExportError(f"unknown board {text!r}; known boards: {', '.join(known_boards())} "
                              "(or give a path to a .toml profile)")
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ExportError(f"board file {path}: not valid TOML: {e}") from None
    return _parse(data, _Fields(path, ""))


class _Fields:
    """Typed reads of one TOML table; every failure names the file, the field and what was allowed."""

    def __init__(self, path: Path, prefix: str) -> None:
        self.path, self.prefix = path, prefix

    def fail(self, key: str, what: str) -> ExportError:
        return ExportError(f"board file {self.path}: field '{self.prefix}{key}': {what}")

    def check_keys(self, table: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        for key in required:
            if key not in table:
                raise self.fail(key, "missing (required)")
        for key in table:
            if key not in required and key not in optional:
                raise self.fail(key, f"unknown field; allowed: {', '.join(required + optional)}")

    def string(self, table: dict[str, Any], key: str, allowed: tuple[str, ...] = ()) -> str:
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        if allowed and value not in allowed:
            raise self.fail(key, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
        return value

    def number(self, table: dict[str, Any], key: str, integer: bool = False) -> Any:
        value = table[key]
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or not value > 0:
            raise self.fail(key, f"expected a positive {'integer' if integer else 'number'}, got {value!r}")
        return value

    def string_list(self, table: dict[str, Any], key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        value = table[key]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a non-empty list of strings from {', '.join(allowed)}; got {value!r}")
        for v in value:
            if v not in allowed:
                raise self.fail(key, f"unknown value {v!r}; allowed: {', '.join(allowed)}")
        if len(set(value)) != len(value):
            raise self.fail(key, f"repeated values in {value!r}")
        return tuple(value)

    def table(self, table: dict[str, Any], key: str) -> tuple[dict[str, Any], _Fields]:
        value = table[key]
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {value!r}")
        return value, _Fields(self.path, f"{self.prefix}{key}.")


_TOP_REQUIRED = ("name", "description", "kind", "core", "clock_mhz", "ram_kib", "flash_kib", "runtimes",
                 "transports", "frontend", "window_s", "model_ram_budget_kib", "model_flash_budget_kib",
                 "macs_per_s_budget", "emulator", "energy")


def _parse(data: dict[str, Any], f: _Fields) -> Board:
    f.check_keys(data, _TOP_REQUIRED, ("npu", "programmer"))
    name = f.string(data, "name")
    if not _NAME_RE.match(name):
        raise f.fail("name", f"{name!r} must be lowercase letters, digits and '-'")
    kind = f.string(data, "kind", KINDS)
    board = Board(
        name=name, description=f.string(data, "description"), kind=kind, core=f.string(data, "core"),
        clock_mhz=f.number(data, "clock_mhz"), ram_kib=f.number(data, "ram_kib", integer=True),
        flash_kib=f.number(data, "flash_kib", integer=True), runtimes=f.string_list(data, "runtimes", RUNTIMES),
        transports=f.string_list(data, "transports", TRANSPORTS), frontend=f.string(data, "frontend", FRONTENDS),
        window_s=f.number(data, "window_s"), model_ram_budget_kib=f.number(data, "model_ram_budget_kib", integer=True),
        model_flash_budget_kib=f.number(data, "model_flash_budget_kib", integer=True),
        macs_per_s_budget=f.number(data, "macs_per_s_budget", integer=True),
        npu=_npu(*f.table(data, "npu")) if "npu" in data else None,
        emulator=_emulator(*f.table(data, "emulator")), energy=_energy(*f.table(data, "energy"), kind=kind),
        programmer=_programmer(*f.table(data, "programmer")) if "programmer" in data else None)
    _check_consistent(board, f)
    return board


def _npu(table: dict[str, Any], f: _Fields) -> Npu:
    f.check_keys(table, ("accelerator", "system_config", "memory_mode"))
    return Npu(accelerator=f.string(table, "accelerator", NPU_ACCELERATORS),
               system_config=f.string(table, "system_config"), memory_mode=f.string(table, "memory_mode"))


_SYSTEM_ONLY = ("uart_base", "ram_origin", "ram_length", "fpu")  # a whole machine's memory map and FPU


def _emulator(table: dict[str, Any], f: _Fields) -> Emulator:
    f.check_keys(table, ("program", "mode", "cpu", "toolchain"), ("machine", *_SYSTEM_ONLY))
    mode = f.string(table, "mode", EMULATOR_MODES)
    if mode == "system":
        for key in ("machine", "uart_base", "ram_origin", "ram_length"):
            if key not in table:
                raise f.fail(key, "missing (required when mode = \"system\")")
    else:
        for key in ("machine", *_SYSTEM_ONLY):
            if key in table:
                raise f.fail(key, "not allowed when mode = \"user\" (user mode runs one binary, no machine)")
    system = mode == "system"
    return Emulator(program=f.string(table, "program"), mode=mode,
                    machine=f.string(table, "machine") if system else None,
                    cpu=f.string(table, "cpu"), toolchain=f.string(table, "toolchain"),
                    uart_base=f.number(table, "uart_base", integer=True) if system else None,
                    ram_origin=f.number(table, "ram_origin", integer=True) if system else None,
                    ram_length=f.number(table, "ram_length", integer=True) if system else None,
                    fpu=f.string(table, "fpu") if "fpu" in table else None)


def _programmer(table: dict[str, Any], f: _Fields) -> Programmer:
    f.check_keys(table, ("pyocd_target",), ("note",))
    return Programmer(pyocd_target=f.string(table, "pyocd_target"),
                      note=f.string(table, "note") if "note" in table else None)


def _energy(table: dict[str, Any], f: _Fields, *, kind: str) -> Mapping[str, Figure]:
    for key in REQUIRED_ENERGY[kind]:
        if key not in table:
            raise f.fail(key, f"missing (a {kind} board needs {', '.join(REQUIRED_ENERGY[kind])})")
    figures = {}
    for key in table:
        sub, g = f.table(table, key)
        g.check_keys(sub, ("value", "source", "estimate"))
        value = g.number(sub, "value")
        if not isinstance(sub["estimate"], bool):
            raise g.fail("estimate", f"expected true or false, got {sub['estimate']!r}")
        figures[key] = Figure(value=float(value), source=g.string(sub, "source"), estimate=sub["estimate"])
    return MappingProxyType(figures)


def _check_consistent(b: Board, f: _Fields) -> None:
    """Cross-field rules: budgets fit the board; the vela runtime and the npu table come together."""
    if b.model_ram_budget_kib > b.ram_kib:
        raise f.fail("model_ram_budget_kib", f"{b.model_ram_budget_kib} exceeds ram_kib {b.ram_kib}")
    if b.model_flash_budget_kib > b.flash_kib:
        raise f.fail("model_flash_budget_kib", f"{b.model_flash_budget_kib} exceeds flash_kib {b.flash_kib}")
    if b.programmer is not None and b.kind != "mcu":
        raise f.fail("programmer", "only a microcontroller (kind = \"mcu\") is flashed through a debug probe")
    if ("ethos-u-vela" in b.runtimes) != (b.npu is not None):
        raise f.fail("npu", "runtime 'ethos-u-vela' and an [npu] table must be given together")
