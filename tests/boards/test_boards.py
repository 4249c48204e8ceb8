"""Board profiles: every shipped profile loads and validates; bad names and malformed files fail clearly."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from acom.boards import BOARDS_DIR, REQUIRED_ENERGY, RUNTIMES, TRANSPORTS, Board, all_boards, known_boards, load_board
from acom.boards.cli import main
from acom.errors import ExportError

SHIPPED = ["cortex-m4", "cortex-m55-u55", "cortex-m7", "rpi4", "rpi5"]


def test_known_boards_are_the_five_shipped():
    assert known_boards() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads_and_is_consistent(name):
    b = load_board(name)
    assert isinstance(b, Board) and b.name == name
    assert set(b.runtimes) <= set(RUNTIMES) and set(b.transports) <= set(TRANSPORTS)
    assert b.model_ram_budget_kib <= b.ram_kib and b.model_flash_budget_kib <= b.flash_kib
    assert b.macs_per_s_budget > 0
    # linux boards run log-mel in the graph over 4 s; MCUs get features from the firmware over 1 s
    expected = {"linux": ("graph", 4.0, "user", "qemu-aarch64"), "mcu": ("firmware", 1.0, "system", "qemu-system-arm")}
    assert (b.frontend, b.window_s, b.emulator.mode, b.emulator.program) == expected[b.kind]
    assert set(REQUIRED_ENERGY[b.kind]) <= set(b.energy)
    for key, fig in b.energy.items():
        assert fig.value > 0 and len(fig.source) > 20, key
        if fig.estimate:
            assert "estimate" in fig.source.lower() or "derived" in fig.source.lower(), key


def test_m55_u55_profile_matches_vela_settings():
    b = load_board("cortex-m55-u55")
    assert (b.model_ram_budget_kib, b.model_flash_budget_kib) == (256, 512)
    assert b.npu is not None
    assert (b.npu.accelerator, b.npu.system_config, b.npu.memory_mode) == (
        "ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram")
    assert b.emulator.command() == "qemu-system-arm -machine mps3-an547"
    assert [x.npu is None for x in all_boards() if x.name != b.name] == [True] * 4


def test_load_by_path_equals_load_by_name():
    assert load_board(str(BOARDS_DIR / "rpi4.toml")) == load_board("rpi4")


def test_unknown_board_lists_known_names():
    with pytest.raises(ExportError) as e:
        load_board("nope")
    msg = str(e.value)
    assert "'nope'" in msg
    for name in SHIPPED:
        assert name in msg


def _write_variant(tmp_path: Path, **changes) -> Path:
    """rpi4.toml with top-level keys replaced (None deletes), written as a new file."""
    data = tomllib.loads((BOARDS_DIR / "rpi4.toml").read_text())
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path = tmp_path / "bad.toml"
    path.write_text(_dump(data))
    return path


def _dump(data: dict, prefix: str = "") -> str:
    """Minimal TOML writer for the profile's shapes (scalars, string lists, nested tables)."""
    scalars = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [f"\n[{prefix}{k}]\n" + _dump(v, f"{prefix}{k}.") for k, v in data.items() if isinstance(v, dict)]
    return "\n".join(scalars) + "\n" + "".join(tables)


def test_round_trip_writer_is_faithful(tmp_path):
    assert load_board(str(_write_variant(tmp_path))) == load_board("rpi4")


@pytest.mark.parametrize("changes, field, allowed", [
    ({"runtimes": ["executorch-xnnpack", "tvm"]}, "runtimes", "tflite-micro"),
    ({"clock_mhz": "fast"}, "clock_mhz", "positive number"),
    ({"ram_kib": 1.5}, "ram_kib", "positive integer"),
    ({"kind": "fpga"}, "kind", "linux, mcu"),
    ({"transports": ["wifi"]}, "transports", "udp, serial"),
    ({"window_s": None}, "window_s", "missing"),
    ({"colour": "green"}, "colour", "unknown field"),
    ({"model_ram_budget_kib": 4_194_304}, "model_ram_budget_kib", "exceeds ram_kib"),
    ({"npu": {"accelerator": "ethos-u55-128", "system_config": "X", "memory_mode": "Y"}}, "npu", "ethos-u-vela"),
    ({"emulator": {"program": "qemu-aarch64", "mode": "user", "cpu": "cortex-a72"}}, "emulator.toolchain", "missing"),
    ({"emulator": {"program": "q", "mode": "system", "cpu": "c", "toolchain": "t"}}, "emulator.machine", "required"),
    ({"energy": {"idle_power_w": {"value": 1.0, "source": "somewhere", "estimate": False}}},
     "energy.active_power_w", "missing"),
])
def test_malformed_profile_names_file_field_and_allowed(tmp_path, changes, field, allowed):
    path = _write_variant(tmp_path, **changes)
    with pytest.raises(ExportError) as e:
        load_board(str(path))
    msg = str(e.value)
    assert str(path) in msg and f"'{field}'" in msg and allowed in msg, msg


def test_emulated_machines_memory_map_and_fpu():
    """The firmware's UART, RAM and FPU per emulated machine (the linker script's symbols, -DUART_BASE, -mfpu)."""
    got = {b.name: (b.emulator.machine, b.emulator.uart_base, b.emulator.ram_origin, b.emulator.ram_length,
                    b.emulator.fpu) for b in all_boards()}
    assert got == {
        "cortex-m4": ("mps2-an386", 0x40004000, 0x400, 0x3FFC00, "fpv4-sp-d16"),
        "cortex-m7": ("mps2-an500", 0x40004000, 0x400, 0x3FFC00, "fpv5-d16"),
        "cortex-m55-u55": ("mps3-an547", 0x49303000, 0x01000000, 0x200000, "auto"),
        "rpi4": (None, None, None, None, None), "rpi5": (None, None, None, None, None)}


@pytest.mark.parametrize("edit, field, allowed", [
    ({"uart_base": None}, "emulator.uart_base", "missing (required when mode = \"system\")"),
    ({"ram_length": "4 MiB"}, "emulator.ram_length", "positive integer"),
    ({"ram_origin": 0}, "emulator.ram_origin", "positive integer"),
    ({"fpu": 5}, "emulator.fpu", "non-empty string"),
    ({"mode": "user", "machine": None}, "emulator.uart_base", "not allowed when mode = \"user\""),
])
def test_malformed_memory_map_names_file_and_field(tmp_path, edit, field, allowed):
    data = tomllib.loads((BOARDS_DIR / "cortex-m4.toml").read_text())
    for key, value in edit.items():
        if value is None:
            del data["emulator"][key]
        else:
            data["emulator"][key] = value
    path = tmp_path / "bad-m4.toml"
    path.write_text(_dump(data))
    with pytest.raises(ExportError) as e:
        load_board(str(path))
    msg = str(e.value)
    assert str(path) in msg and f"'{field}'" in msg and allowed in msg, msg


def test_energy_figure_without_source_fails(tmp_path):
    data = tomllib.loads((BOARDS_DIR / "rpi4.toml").read_text())
    del data["energy"]["idle_power_w"]["source"]
    path = tmp_path / "nosource.toml"
    path.write_text(_dump(data))
    with pytest.raises(ExportError, match=r"'energy\.idle_power_w\.source': missing"):
        load_board(str(path))


def test_invalid_toml_and_missing_file_name_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(ExportError, match="broken.toml: not valid TOML"):
        load_board(str(path))
    with pytest.raises(ExportError, match="absent.toml not found"):
        load_board(str(tmp_path / "absent.toml"))


def test_cli_json_lists_every_board(capsys):
    assert main(["--json"]) == 0
    boards = json.loads(capsys.readouterr().out)
    assert [b["name"] for b in boards] == SHIPPED
    m55 = boards[SHIPPED.index("cortex-m55-u55")]
    assert m55["npu"]["accelerator"] == "ethos-u55-128"
    assert m55["energy"]["energy_per_mac_pj"]["estimate"] is True


def test_cli_table_and_details(capsys):
    assert main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["name", "kind", "core"] and len(lines) == 1 + len(SHIPPED)
    assert main(["rpi5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["core"] == "Cortex-A76 x4"
    assert main(["cortex-m4"]) == 0
    out = capsys.readouterr().out
    assert "mps2-an386" in out and "source:" in out


def test_cli_unknown_board_raises():
    with pytest.raises(ExportError, match="known boards: cortex-m4"):
        main(["nope"])
