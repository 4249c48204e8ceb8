"""The device C's build: wire constants generated from runtime/wire.py (never copied by hand), programs built
through the top-level CMakeLists.txt, and its failures as AcomErrors that say what to do."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acom.errors import AcomError
from acom.export import c_constants
from acom.firmware_host import cbuild
from acom.runtime import wire


def _defines(text: str) -> dict[str, int]:
    return {m[1]: int(m[2], 0) for m in re.finditer(r"^#define ACOM_(\w+) (\S+)$", text, re.M)}


def test_generated_header_holds_the_python_constants(tmp_path: Path) -> None:
    got = _defines(c_constants.write(tmp_path).read_text())
    assert got == {
        "WIRE_VERSION": wire.VERSION, "MAGIC_0": wire.MAGIC[0], "MAGIC_1": wire.MAGIC[1],
        "MAX_PACKET": wire.MAX_PACKET, "MAX_FRAMES": wire.MAX_FRAMES, "MAX_STAGES": 255,
        "FULL_HEADER": 32, "SIGNED_HEADER": 34, "SHORT_HEADER": 2, "SHORT": 0x80, "SHORT_END": 0x40,
        "SHORT_NQ": 0x20, "SHORT_NFRAMES": 0x10, "CONTEXTS": 16, "FLAG_ENTROPY": wire.FLAG_ENTROPY,
        "FLAG_END": wire.FLAG_END, "FLAG_SHORT": wire.FLAG_SHORT, "TAG_SHIFT": wire.TAG_SHIFT,
        "TAG_SIZE_1": 4, "TAG_SIZE_2": 8, "TAG_SIZE_3": 16, "DEFAULT_TAG": wire.DEFAULT_TAG, "CRC_SIZE": 4,
        "CHECK_SIZE": 2}
    # acom_wire.h takes them from the generated header, and defines none of them itself
    hand = _defines((cbuild.C_DIR / "acom_wire.h").read_text())
    assert not set(hand) & set(got) and '#include "acom_wire_constants.h"' in (cbuild.C_DIR / "acom_wire.h").read_text()
    assert c_constants.main([str(tmp_path / "cli")]) == 0 and (tmp_path / "cli" / c_constants.HEADER_NAME).is_file()


def test_a_program_built_through_cmake_sees_the_generated_constants(tmp_path: Path) -> None:
    names = list(c_constants.constants())
    src = tmp_path / "constants.c"
    src.write_text('#include "acom_wire.h"\n#include "io.h"\nint main(void) {\n'
                   f"    static const long v[] = {{{', '.join(f'ACOM_{n}' for n in names)}}};\n"
                   "    for (int i = 0; i < (int)(sizeof v / sizeof v[0]); i++) io_numbers(\"c\", v + i, 1);\n"
                   "    return 0;\n}\n")
    exe = cbuild.build("host", [src], tmp_path / "constants", tmp_path)
    assert (tmp_path / c_constants.HEADER_NAME).read_text() == c_constants.render()  # written by build
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert [int(x) for x in out[1::2]] == list(c_constants.constants().values())


def test_a_compiler_error_names_the_line(tmp_path: Path) -> None:
    src = tmp_path / "broken.c"
    src.write_text("int main(void) { return undeclared_name; }\n")
    with pytest.raises(AcomError, match=r"(?s)building broken for host failed: .*broken\.c:1:.*undeclared_name"):
        cbuild.build("host", [src], tmp_path / "broken", tmp_path)


def test_missing_cmake_says_what_installs_it(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # no cmake beside it
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(AcomError, match=r"cmake not found .*`make setup` installs it"):
        cbuild.cmake()


def test_each_board_kind_has_its_toolchain_file() -> None:
    from acom.boards import all_boards
    for b in all_boards():
        opts = cbuild.board_options(b.name)
        toolchain = Path(next(o for o in opts if o.startswith("-DCMAKE_TOOLCHAIN_FILE=")).split("=", 1)[1])
        assert toolchain.parent == cbuild.CMAKE_DIR and toolchain.is_file()
        assert f"-DACOM_CPU={b.emulator.cpu}" in opts and f"-DACOM_KIND={b.kind}" in opts
        if b.kind == "mcu":
            assert f"-DACOM_UART_BASE={b.emulator.uart_base:#x}" in opts and f"-DACOM_FPU={b.emulator.fpu}" in opts
