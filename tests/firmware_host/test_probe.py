"""Flashing through a debug probe (firmware_host/probe.py). No probe or board can be attached here: the
no-probe path runs pyOCD's real probe search; programming and read-back run against a fake probe and flash
(a dict of memory), which stands in for the hardware and says so."""

from __future__ import annotations

import dataclasses
import json

import pytest
from intelhex import IntelHex

from acom.boards import load_board
from acom.errors import AcomError
from acom.firmware_host.probe import flash_bundle, hex_segments
from acom.runtime.bundle import read_manifest
from acom.runtime.manifest import Firmware

IMAGE = bytes(range(256)) * 40  # 10 KiB


def bundle_with_image(src, tmp_path, address: int):
    """A copy of the manifest of `src` that names an Intel hex image at `address`."""
    ih = IntelHex()
    ih.frombytes(IMAGE, offset=address)
    (tmp_path / "firmware").mkdir()
    ih.write_hex_file(str(tmp_path / "firmware" / "acom-fw.hex"))
    fw = Firmware(True, None, "firmware/acom-fw.elf", "firmware/acom-fw.hex", (), {}, {}, 16000)
    return dataclasses.replace(read_manifest(src), firmware=fw)


class FakeTarget:
    def __init__(self, corrupt: int | None) -> None:
        self.memory, self.corrupt, self.resets = {}, corrupt, 0

    def read_memory_block8(self, address: int, n: int) -> list[int]:
        out = [self.memory.get(address + i, 0xFF) for i in range(n)]
        if self.corrupt is not None and address <= self.corrupt < address + n:
            out[self.corrupt - address] ^= 1
        return out

    def reset(self) -> None:
        self.resets += 1


class FakeSession:
    """A probe and board that cannot exist here: a memory dict behind pyOCD's session interface."""

    def __init__(self, corrupt: int | None = None) -> None:
        self.target, self.probe = FakeTarget(corrupt), type("Probe", (), {"description": "fake probe"})()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


class FakeLoader:
    def __init__(self, session: FakeSession) -> None:
        self.session, self.pending = session, []

    def add_data(self, address: int, data: list[int]) -> None:
        self.pending.append((address, data))

    def commit(self) -> None:
        for address, data in self.pending:
            self.session.target.memory.update({address + i: b for i, b in enumerate(data)})


def test_image_segments_and_memory_map(rpi4_asr, tmp_path):
    m = bundle_with_image(rpi4_asr, tmp_path, 0x08000000)
    assert hex_segments(tmp_path / m.firmware.hex) == [(0x08000000, IMAGE)]
    board = load_board("cortex-m7")
    session = FakeSession()
    done = flash_bundle(tmp_path, m, board, None, lambda target, probe: session, FakeLoader)
    assert done == {"image": str(tmp_path / "firmware/acom-fw.hex"), "bytes": len(IMAGE), "target": "stm32h743xx",
                    "probe": "fake probe"}
    assert bytes(session.target.memory[0x08000000 + i] for i in range(len(IMAGE))) == IMAGE
    assert session.target.resets == 1
    bad = FakeSession(corrupt=0x08000000 + 777)
    with pytest.raises(AcomError, match="verify failed: the byte at 0x08000309"):
        flash_bundle(tmp_path, m, board, None, lambda target, probe: bad, FakeLoader)
    assert bad.target.resets == 0


def test_no_probe_and_images_that_do_not_fit(rpi4_asr, tmp_path):
    board = load_board("cortex-m7")
    m = bundle_with_image(rpi4_asr, tmp_path, 0x08000000)
    with pytest.raises(AcomError, match="no debug probe found .*cmsisdap, picoprobe, remote, stlink"):
        flash_bundle(tmp_path, m, board, None)  # pyOCD's real search: nothing attached here
    low = tmp_path / "low"
    low.mkdir()
    with pytest.raises(AcomError, match="outside stm32h743xx's flash .*linked for the emulated machine"):
        flash_bundle(low, bundle_with_image(rpi4_asr, low, 0x400), board, None)
    with pytest.raises(AcomError, match="pyOCD has no built-in target 'stm32l476rgtx'.*pyocd pack install"):
        flash_bundle(tmp_path, m, load_board("cortex-m4"), None)
    with pytest.raises(AcomError, match="board cortex-m55-u55: no \\[programmer\\]"):
        flash_bundle(tmp_path, m, load_board("cortex-m55-u55"), None)
    with pytest.raises(AcomError, match="no firmware image in this bundle"):
        flash_bundle(tmp_path, dataclasses.replace(m, firmware=None), board, None)
    assert json.loads(json.dumps(board.to_dict()))["programmer"] == {"pyocd_target": "stm32h743xx", "note": None}
