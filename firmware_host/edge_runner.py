"""acom-edge, the Linux boards' device program (firmware_host/c/linux/): built with the top-level CMakeLists.txt
against the ExecuTorch runtime (this machine's, from the installed executorch wheel, or the aarch64 wheel of the
same version that `make setup` fetches into the cache) and run on this machine or under ``qemu-aarch64``.

    build_edge("rpi4") -> the aarch64 binary (cached; rebuilt when a source changes)
    edge_command("rpi4", exe) -> ["qemu-aarch64", "-cpu", "cortex-a72", "-L", <sysroot>, exe]
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from acom.boards import load_board
from acom.errors import AcomError
from acom.firmware_host import cbuild
from acom.firmware_host.cbuild import PACKAGE_DIR, board_options, cmake, kind, tool

CACHE = Path(os.environ.get("ACOM_CACHE", Path.home() / ".cache" / "acom"))  # build-time downloads and builds
AARCH64_SYSROOT = Path("/usr/aarch64-linux-gnu")  # Debian's libc6-arm64-cross: the loader and libc for qemu
# the wheel's libraries acom-edge loads (NEEDED, directly or through one another)
LIBRARIES = ("libexecutorch.so", "libexecutorch_kernels_optimized.so", "libexecutorch_backend_xnnpack.so",
             "libexecutorch_threadpool.so", "libexecutorch_etdump.so")


def executorch_version() -> str:
    """The installed executorch's version: the aarch64 runtime must be the same (the .pte format and kernels)."""
    try:
        return metadata.version("executorch")
    except metadata.PackageNotFoundError:
        raise AcomError("executorch is not installed: `make setup` installs it (requirements.txt)") from None


def runtime_root(board: str) -> Path:
    """The folder holding the ExecuTorch package (lib/, include/, share/cmake/) for `board`'s programs."""
    if kind(board) == "host":
        import executorch  # noqa: PLC0415 (heavy optional dependency)
        return Path(executorch.__path__[0])
    if kind(board) == "mcu":
        raise AcomError(f"board {board}: acom-edge is for Linux boards; a microcontroller runs the firmware "
                        "(acom flash --bundle DIR)")
    root = CACHE / f"executorch-{executorch_version()}-aarch64" / "executorch"
    if not (root / "lib" / "libexecutorch.so").is_file():
        raise AcomError(f"{root}: no aarch64 ExecuTorch runtime; `make setup` fetches it (the executorch "
                        f"{executorch_version()} wheel for manylinux_2_28_aarch64), or run: python -m "
                        "acom.firmware_host.edge_runner --unpack WHEEL")
    return root


def unpack_wheel(wheel: Path) -> Path:
    """Unpack the runtime parts (lib/, include/, share/) of an aarch64 executorch wheel into the cache."""
    version = executorch_version()
    if f"executorch-{version}-" not in wheel.name or "aarch64" not in wheel.name:
        raise AcomError(f"{wheel}: expected the executorch {version} wheel for aarch64 (the installed version)")
    dest = CACHE / f"executorch-{version}-aarch64"
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp, [n for n in z.namelist() if n.startswith(("executorch/lib/", "executorch/include/",
                                                                      "executorch/share/"))])
    for f in (tmp / "executorch" / "lib").glob("*.so*"):
        f.chmod(0o755)
    if dest.exists():
        import shutil  # noqa: PLC0415
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on `path` (two test workers building the same board wait for each other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_edge(board: str) -> Path:
    """acom-edge for `board` ("host" or a Linux board), built in the cache (CMake rebuilds what changed); its
    path. AcomError with the compiler's message when the build fails."""
    root = runtime_root(board)
    import hashlib  # noqa: PLC0415
    # one build folder per board, runtime and source tree (a checkout and an installed wheel do not share one)
    tree = hashlib.sha1(str(PACKAGE_DIR).encode()).hexdigest()[:8]
    work = CACHE / "acom-edge" / f"{board}-{executorch_version()}-{tree}"
    opts = [*board_options(board), "-DACOM_EDGE=ON", f"-DACOM_BOARD={'' if board == 'host' else board}",
            f"-DCMAKE_PREFIX_PATH={root}", f"-DPython3_EXECUTABLE={sys.executable}", "-DCMAKE_BUILD_TYPE=Release"]
    if board != "host":
        tool(load_board(board).emulator.toolchain)  # the C++ driver (aarch64-linux-gnu-g++)
    with _locked(work.parent / f"{work.name}.lock"):  # not with_suffix: the version's dots would cut the name
        stamp = work / "acom-options.txt"
        if not stamp.is_file() or stamp.read_text() != "\n".join(opts):
            _step([_cmake(), "-S", str(PACKAGE_DIR), "-B", str(work), *opts], board)
            stamp.write_text("\n".join(opts))
        _step([_cmake(), "--build", str(work), "-j", "2", "--target", "acom-edge"], board)
    return work / "acom-edge"


def _cmake() -> str:
    """The pinned cmake (the pip package's, 3.31: the executorch package's targets need 3.28), even when this
    Python's bin folder lacks its script (an installed wheel run with another environment's packages)."""
    try:
        import cmake as pip_cmake  # noqa: PLC0415
        exe = Path(pip_cmake.CMAKE_BIN_DIR) / "cmake"
        if exe.is_file():
            return str(exe)
    except ImportError:
        pass
    return cmake()


def _step(cmd: list[str], board: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        said = "\n".join(x for x in (done.stderr or done.stdout).splitlines() if not x.startswith(("gmake", "make")))
        raise AcomError(f"building acom-edge for {board} failed: {said[-800:]}")


def edge_command(board: str, exe: Path) -> list[str]:
    """How to run acom-edge built for `board` here: directly (host) or under the board's qemu-aarch64 with
    Debian's aarch64 loader and libraries (the binary finds the runtime's libraries by its RUNPATH)."""
    if kind(board) == "host":
        return [str(exe)]
    emu = load_board(board).emulator
    if not (AARCH64_SYSROOT / "lib" / "ld-linux-aarch64.so.1").exists():
        raise AcomError(f"{AARCH64_SYSROOT}: no aarch64 loader (Debian libc6-arm64-cross; `make setup`)")
    return [tool(emu.program), "-cpu", emu.cpu, "-L", str(AARCH64_SYSROOT), str(exe)]


def count_instructions(board: str, bundle: Path, work: Path) -> dict:
    """Guest instructions acom-edge executes under the board's qemu-aarch64 (counted by the QEMU plugin
    c/test/qemu_insn.c) on 1 and on 4 windows of noise: {"per_s_audio": the difference per second of audio
    (the runtime's start-up left out), "startup": the 1-window run's count}."""
    import numpy as np  # noqa: PLC0415
    import soundfile as sf  # noqa: PLC0415

    from acom.runtime.bundle import read_manifest  # noqa: PLC0415
    m = read_manifest(bundle)
    cmd, plugin = edge_command(board, build_edge(board)), cbuild.insn_plugin(work)
    counts = []
    for windows in (1, 4):
        wav = work / f"noise-{windows}.wav"
        noise = np.random.default_rng(0).standard_normal(windows * m.graph.window_samples) * 3000
        sf.write(wav, noise.astype(np.int16), m.sample_rate, subtype="PCM_16")
        args = ["--bundle", str(bundle), "--udp", "127.0.0.1:9", str(wav)]
        counts.append(cbuild.count_instructions([*cmd, *args], plugin, timeout=900, program=len(cmd) - 1)[1])
    seconds = 3 * m.graph.window_samples / m.sample_rate
    return {"per_s_audio": (counts[1] - counts[0]) / seconds, "startup": counts[0]}


def to_wavs(files: list[Path], rate: int, out: Path) -> list[Path]:
    """The audio files as 16-bit mono WAV files at `rate` in the folder `out` (what acom-edge reads, as a board's
    microphone driver would give it): out/NNNN-STEM.wav, in order."""
    import numpy as np  # noqa: PLC0415
    import soundfile as sf  # noqa: PLC0415

    from acom.core.audio import load_audio  # noqa: PLC0415
    paths = []
    for i, path in enumerate(files):
        pcm = np.clip(np.round(load_audio(path, rate) * 32768), -32768, 32767).astype(np.int16)
        paths.append(out / f"{i:04d}-{Path(path).stem}.wav")
        sf.write(paths[-1], pcm, rate, subtype="PCM_16")
    return paths


def main(argv: list[str] | None = None) -> int:
    """`python -m acom.firmware_host.edge_runner --unpack WHEEL` (the Makefile's step), or `--build BOARD`."""
    import argparse  # noqa: PLC0415
    ap = argparse.ArgumentParser(description="Prepare acom-edge: unpack the aarch64 runtime, or build for a board.")
    ap.add_argument("--unpack", type=Path, metavar="WHEEL", help="unpack an aarch64 executorch wheel into the cache")
    ap.add_argument("--build", metavar="BOARD", help="build acom-edge for BOARD (host, rpi4, rpi5); print its path")
    args = ap.parse_args(argv)
    if args.unpack:
        print(unpack_wheel(args.unpack))
    if args.build:
        print(build_edge(args.build))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AcomError as e:
        print(f"edge_runner: error: {e}", file=sys.stderr)
        sys.exit(2)
