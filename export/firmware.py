"""An MCU bundle's firmware: the device as one image to flash or emulate (firmware_host/c/app/firmware_uart.c:
audio in on the UART as docs/firmware.md frames it, packets out on the same UART), built from the bundle's c/
for its board and written into the bundle's ``firmware/`` by ``acom-export``.

The stream settings are compiled in (``app_settings.h``, written here, also for device_app.c's clips):
``StreamSettings`` says what they are; the manifest records them. A bundle's image never holds a key: build one
with ``build_firmware(..., StreamSettings(key=...))`` for a device of your own.
"""

from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from acom.errors import AcomError
from acom.export.c_build import build, tool
from acom.export.c_bundle import C_DIR
from acom.export.c_priors import c_array, c_tables
from acom.runtime.manifest import Firmware, Manifest
from acom.runtime.wire import DEFAULT_TAG, MAX_FRAMES, TAG_SIZES

APP_DIR = C_DIR / "app"
NAME = "acom-fw"  # firmware/acom-fw.elf, .hex, .bin
# the firmware's own sources: the application, the shared device loop, the UART's audio in and packets out
FIRMWARE_SOURCES = ("firmware_uart.c", "device_stream.c", "audio_uart.c", "transport_uart.c")
REGION_GAP = 4096  # load segments closer than this share one .bin (the gap zero-filled)


@dataclass(frozen=True, kw_only=True)
class StreamSettings:
    """How the firmware sends each stream it is given (compiled in: app_settings.h)."""

    device_id: int = 1  # the device id its packets carry
    frames_per_packet: int | None = None  # code frames a packet; None: one second's (round(frame rate))
    full_every: int = 8  # one packet in this many (and the first and last) is full
    entropy: bool = True  # range-coded under the bundle's priors when it has them (c/acom_priors.c)
    key: bytes | None = None  # HMAC key: tagged packets; None: CRCs (a bundle's own image never holds a key)
    tag_len: int = DEFAULT_TAG  # bytes of tag with a key: 4, 8 or 16

    def to_dict(self, frame_rate: float, entropy: bool) -> dict:
        """What the manifest records (the key's presence, never the key)."""
        return {"device_id": self.device_id, "frames_per_packet": self.packet_frames(frame_rate),
                "full_every": self.full_every, "entropy": entropy, "keyed": self.key is not None,
                "tag_len": self.tag_len if self.key is not None else 0}

    def packet_frames(self, frame_rate: float) -> int:
        return self.frames_per_packet or max(1, round(frame_rate))


def check_settings(frames_per_packet: int, full_every: int, key: bytes | None, tag_len: int) -> None:
    """AcomError for stream settings the device would refuse packet by packet."""
    if not 1 <= frames_per_packet <= MAX_FRAMES:
        raise AcomError(f"frames_per_packet {frames_per_packet}: expected 1..{MAX_FRAMES}")
    if full_every < 1:
        raise AcomError(f"full_every {full_every}: expected 1 or more")
    if key is not None and tag_len not in TAG_SIZES[1:]:
        raise AcomError(f"tag_len {tag_len}: expected one of {', '.join(map(str, TAG_SIZES[1:]))} (bytes of HMAC tag)")


def priors_lines(priors, n_q: int, name: str) -> list[str]:
    """The range coder's tables as C (``#define name`` the array), ``#include "acom_priors.h"`` for "bundle" (the
    bundle's own c/acom_priors.c), or ``#define name NULL``: bit-packed."""
    if priors is None:
        return [f"#define {name} NULL"]
    if priors == "bundle":
        return ['#include "acom_priors.h"', f"#define {name} ACOM_PRIORS"]
    return [*c_tables(priors, n_q, name + "_TABLE"), f"#define {name} {name}_TABLE"]


def write_settings(path: Path, manifest: Manifest, device_id: int, full_every: int, key: bytes | None,
                   priors=None, frames_per_packet: int = 1, tag_len: int = DEFAULT_TAG) -> None:
    """app_settings.h for device_stream.c: the bundle's window and codebooks, and how the device sends:
    `frames_per_packet` code frames a packet, range-coded under `priors` when given ("bundle": the bundle's
    c/acom_priors.h, else a CodePriors whose tables go into the header), with `key` tags of `tag_len` bytes."""
    check_settings(frames_per_packet, full_every, key, tag_len)
    lines = ["/* written by acom.export.firmware: do not edit */", "#include <stddef.h>", "#include <stdint.h>",
             *priors_lines(priors, manifest.n_q, "A_PRIORS"),
             f"#define A_WINDOW {manifest.graph.window_samples}",
             f"#define A_SAMPLES_PER_CODE {round(manifest.sample_rate / manifest.frame_rate)}",
             f"#define A_NQ {manifest.n_q}", f"#define A_FPP {frames_per_packet}", f"#define A_DEVICE {device_id}u",
             f"#define A_FULL_EVERY {full_every}u", f"#define A_TAG_LEN {tag_len if key is not None else 0}u",
             f"#define A_KEY_LEN {len(key or b'')}u", f"static const uint8_t A_KEY[] = {c_array(key or b'')};",
             f"static const uint32_t A_SIZES[] = {c_array(manifest.codebook_sizes)};",
             f"static const uint8_t A_HASH[32] = {c_array(bytes.fromhex(manifest.codebook_hash))};"]
    path.write_text("\n".join(lines) + "\n")


def graph_sources(c: Path, entropy: bool) -> list[Path]:
    """The bundle's c/ files a device program compiles (the library's own come from the build's acom_device)."""
    return [c / "acom_graph.c", c / "acom_kernels.c", c / "acom_frontend.c", c / "acom_frontend_tables.c",
            *([c / "acom_priors.c"] if entropy else [])]


@dataclass(frozen=True)
class FirmwareBuild:
    """A firmware built into a folder: its files ({bundle-relative name: path}) and the manifest's record."""

    files: dict[str, Path] = field(default_factory=dict)
    record: Firmware | None = None


def build_firmware(board: str, manifest: Manifest, c: Path, work: Path,
                   settings: StreamSettings = StreamSettings()) -> FirmwareBuild:
    """firmware_uart.c with the bundle's c/ (its graph, front end and, with `settings.entropy` and priors in the
    bundle, its range coder's tables) for `board` (a name or profile path) into `work`: the ELF, the .hex and
    the image as .bin (one per load region when the image has several: mps3-an547 keeps its vector table in
    ITCM at 0 and the program in SRAM at 0x01000000), with section sizes. AcomError if the build fails."""
    entropy = settings.entropy and (c / "acom_priors.c").exists()
    fpp = settings.packet_frames(manifest.frame_rate)
    write_settings(work / "app_settings.h", manifest, settings.device_id, settings.full_every, settings.key,
                   "bundle" if entropy else None, fpp, settings.tag_len)
    elf = build(board, [*(APP_DIR / n for n in FIRMWARE_SOURCES), *graph_sources(c, entropy)], work / NAME, work,
                extra_include=c, flash_images=True)
    regions = load_regions(elf.read_bytes())
    files = {f"firmware/{NAME}.elf": elf, f"firmware/{NAME}.hex": work / f"{NAME}.hex"}
    images = []
    if len(regions) == 1:
        files[f"firmware/{NAME}.bin"] = work / f"{NAME}.bin"  # objcopy's, the same bytes
        images.append({"file": f"firmware/{NAME}.bin", "address": regions[0][0]})
    else:
        for address, data in regions:
            name = f"{NAME}-{address:#010x}.bin"
            (work / name).write_bytes(data)
            files[f"firmware/{name}"] = work / name
            images.append({"file": f"firmware/{name}", "address": address})
    record = Firmware(True, None, elf=f"firmware/{NAME}.elf", hex=f"firmware/{NAME}.hex", images=tuple(images),
                      sections=section_sizes(elf), settings=settings.to_dict(manifest.frame_rate, entropy),
                      window_samples=manifest.graph.window_samples)
    return FirmwareBuild(files, record)


def bundle_firmware(board: str, manifest: Manifest, files: dict[str, bytes]) -> tuple[Firmware, dict[str, bytes]]:
    """What ``acom-export`` writes for an MCU bundle: the firmware built from the bundle's c/ `files` for `board`
    with the default StreamSettings, as (the manifest's record, {"firmware/NAME": bytes}); a machine without the
    toolchain, or a failed build, gets the reason instead and no files (the bundle's C stays usable)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="acom-fw-") as tmp:
        for name, data in files.items():
            if name.startswith("c/"):
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / name).write_bytes(data)
        try:
            built = build_firmware(board, manifest, Path(tmp) / "c", Path(tmp))
        except AcomError as e:
            return Firmware(False, str(e)), {}
        return built.record, {name: path.read_bytes() for name, path in built.files.items()}


def section_sizes(elf: Path) -> dict[str, int]:
    """text, data and bss bytes (arm-none-eabi-size's Berkeley sums), flash (text + data: what is stored) and RAM
    (data + bss, the stack included: what runs) of an ELF."""
    done = subprocess.run([tool("arm-none-eabi-size"), str(elf)], capture_output=True, text=True)
    if done.returncode != 0:
        raise AcomError(f"arm-none-eabi-size {elf}: {done.stderr.strip()}")
    text, data, bss = (int(x) for x in done.stdout.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash_bytes": text + data, "ram_bytes": data + bss}


def load_regions(elf: bytes) -> list[tuple[int, bytes]]:
    """The bytes a 32-bit little-endian ELF loads, as (address, bytes) per region: its loadable segments by
    load address, those closer than REGION_GAP merged (the gap zero-filled). AcomError if not such an ELF."""
    if elf[:6] != b"\x7fELF\x01\x01":
        raise AcomError("not a 32-bit little-endian ELF")
    phoff, = struct.unpack_from("<I", elf, 28)
    phentsize, phnum = struct.unpack_from("<HH", elf, 42)
    segments = []
    for i in range(phnum):
        kind, offset, _vaddr, paddr, filesz = struct.unpack_from("<5I", elf, phoff + i * phentsize)
        if kind == 1 and filesz:  # PT_LOAD with bytes in the file
            segments.append((paddr, elf[offset:offset + filesz]))
    regions: list[tuple[int, bytearray]] = []
    for address, data in sorted(segments):
        if regions and address - (regions[-1][0] + len(regions[-1][1])) < REGION_GAP:
            start, buf = regions[-1]
            buf += bytes(address - start - len(buf))
            buf += data
        else:
            regions.append((address, bytearray(data)))
    return [(a, bytes(b)) for a, b in regions]
