"""The synthetic UrbanSound8K: the real set's layout, determinism, randomized clips, SNRs, separable classes."""

from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acom.corpora.synth import urban
from acom.corpora.synth.noise import measured_snr_db, opensfx_recordings
from acom.errors import DataError

SEED = 7
CLIPS = 3
REAL_HEADER = "slice_file_name,fsID,start,end,salience,fold,classID,class"
NAME = re.compile(r"^(\d+)-(\d)-(\d+)-(\d+)\.wav$")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("urban") / "UrbanSound8K"
    return out, urban.generate_urban(out, clips_per_class=CLIPS, seed=SEED, workers=2, progress=False)


def _rows(root: Path, name: str = "UrbanSound8K.csv") -> list[dict[str, str]]:
    with (root / "metadata" / name).open(newline="") as f:
        return list(csv.DictReader(f))


def _read(path: Path) -> np.ndarray:
    audio, sr = sf.read(str(path), dtype="float64")
    assert sr == urban.SR
    return audio


def _logmel(x: np.ndarray, n_mels: int = 40, nfft: int = 512) -> np.ndarray:
    """[T, n_mels] log-mel power of x on a 4 s grid (zero-padded), by a plain numpy STFT."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    pts = 700 * (10 ** (np.linspace(mel(20), mel(8000), n_mels + 2) / 2595) - 1)
    freqs = np.fft.rfftfreq(nfft, 1 / urban.SR)
    fb = np.stack([np.interp(freqs, pts[m:m + 3], [0, 1, 0]) for m in range(n_mels)], axis=1)
    x = np.pad(x, (0, max(0, int(urban.MAX_SECONDS * urban.SR) - len(x))))
    frames = np.lib.stride_tricks.sliding_window_view(x, nfft)[::nfft // 2] * np.hanning(nfft)
    return np.log(np.abs(np.fft.rfft(frames)) ** 2 @ fb + 1e-8)


def _profile(x: np.ndarray) -> np.ndarray:
    """Mean log-mel spectrum [n_mels] of the frames within 30 dB of the loudest, level removed: the shape of
    the sound itself, not of the silence between a dog's barks."""
    frames = _logmel(x)
    loudness = frames.max(axis=1)
    m = frames[loudness > loudness.max() - np.log(1e3)].mean(axis=0)
    return m - m.mean()


# ---- layout ----

def test_metadata_has_the_real_columns_and_names(dataset: tuple[Path, dict]) -> None:
    root, _ = dataset
    assert (root / "metadata" / "UrbanSound8K.csv").read_text().splitlines()[0] == REAL_HEADER
    assert ",".join(urban.CSV_COLUMNS) == REAL_HEADER
    rows = _rows(root)
    assert len(rows) == CLIPS * len(urban.CLASSES)
    for row in rows:
        match = NAME.match(row["slice_file_name"])
        assert match, row
        assert match[1] == row["fsID"] and match[2] == row["classID"]
        assert urban.CLASSES[int(row["classID"])] == row["class"]
        assert 1 <= int(row["fold"]) <= 10 and row["salience"] in ("1", "2")
        assert 0 <= float(row["start"]) < float(row["end"]) <= float(row["start"]) + 4.0 + 1e-6
        assert (root / "audio" / f"fold{row['fold']}" / row["slice_file_name"]).is_file()
    assert len({row["fsID"] for row in rows}) == len(rows), "one slice per pseudo source recording"
    assert sorted(p.name for p in (root / "audio").iterdir()) == sorted(f"fold{k}" for k in range(1, 11))
    assert not root.with_name(root.name + ".tmp").exists()


def test_real_class_ids() -> None:
    assert urban.CLASSES.index("air_conditioner") == 0 and urban.CLASSES.index("dog_bark") == 3
    assert urban.CLASSES.index("gun_shot") == 6 and urban.CLASSES.index("street_music") == 9
    assert set(urban.GENERATORS) == set(urban.CLASSES)


def test_audio_is_16k_mono_pcm16_short_and_not_silent(dataset: tuple[Path, dict]) -> None:
    root, _ = dataset
    files = sorted((root / "audio").glob("fold*/*.wav"))
    assert len(files) == CLIPS * len(urban.CLASSES)
    for path in files:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), path
        audio = _read(path)
        assert 16000 <= len(audio) <= 64000, path
        assert np.abs(audio).max() < 1.0 and np.sqrt(np.mean(audio ** 2)) > 1e-3, path


def test_folds_are_dealt_evenly_per_class(dataset: tuple[Path, dict]) -> None:
    root, summary = dataset
    for c in range(len(urban.CLASSES)):
        assert np.bincount(urban.clip_folds(SEED, c, 100), minlength=11)[1:].tolist() == [10] * 10
        folds = [row["fold"] for row in _rows(root) if row["classID"] == str(c)]
        assert len(set(folds)) == CLIPS  # 3 clips go to 3 different folds
    assert summary["clips_per_class"] == {name: CLIPS for name in urban.CLASSES}
    assert sum(summary["clips_per_fold"].values()) == summary["clips"] == CLIPS * len(urban.CLASSES)
    details = _rows(root, "synth_details.csv")
    assert summary["total_seconds"] == pytest.approx(sum(float(d["duration_s"]) for d in details))


def test_backgrounds_never_name_a_class(dataset: tuple[Path, dict]) -> None:
    root, _ = dataset
    titles = {r.title for r in urban.backgrounds()}
    words = re.compile(r"horn|hammer|drill|siren|whistle|crossing|gun|explosion|crash|dog|bark|children", re.I)
    assert titles and not any(words.search(t) for t in titles)
    assert len(titles) < len(opensfx_recordings())  # the archive does hold such recordings
    assert {d["background"] for d in _rows(root, "synth_details.csv")} <= titles


# ---- determinism and randomization ----

def test_same_seed_same_bytes_whatever_the_workers(dataset: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = dataset
    again = tmp_path / "again"
    urban.generate_urban(again, clips_per_class=CLIPS, seed=SEED, workers=1, progress=False)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (root / rel).read_bytes() == (again / rel).read_bytes(), rel
    # Regenerating over a set replaces it whole.
    summary = urban.generate_urban(again, clips_per_class=1, seed=SEED, workers=1, progress=False)
    assert summary["clips"] == 10 and len(list((again / "audio").glob("fold*/*.wav"))) == 10


def test_another_seed_gives_other_audio() -> None:
    for c in range(len(urban.CLASSES)):
        a, b = urban.render_clip(SEED, c, 0)[0], urban.render_clip(SEED + 1, c, 0)[0]
        assert len(a) != len(b) or not np.allclose(a, b, atol=1e-3), urban.CLASSES[c]


def test_clips_of_a_class_are_not_one_template() -> None:
    # Fresh noise alone moves this shape distance by under 1: the two halves of one steady clip (an air
    # conditioner, an idling engine) differ that little. Clips drawn with their own parameters differ more.
    for name in ("air_conditioner", "engine_idling"):
        for i in range(CLIPS):
            fg = urban.render_clip(SEED, urban.CLASSES.index(name), i)[0]
            half = len(fg) // 2
            assert np.linalg.norm(_profile(fg[:half]) - _profile(fg[half:])) < 1.0, name
    for c, name in enumerate(urban.CLASSES):
        profiles = [_profile(urban.render_clip(SEED, c, i)[0]) for i in range(CLIPS)]
        distances = [np.linalg.norm(a - b) for a, b in itertools.combinations(profiles, 2)]
        assert np.mean(distances) > 2.0, (name, distances)


# ---- levels ----

def test_files_hold_the_recorded_snr(dataset: tuple[Path, dict]) -> None:
    root, _ = dataset
    rows = {r["slice_file_name"]: r for r in _rows(root)}
    for detail in _rows(root, "synth_details.csv")[::4]:
        row = rows[detail["slice_file_name"]]
        fg, bg, info = urban.render_clip(SEED, int(row["classID"]), _index_of(row))
        assert info.file_name == row["slice_file_name"] and info.background == detail["background"]
        mix = _read(root / "audio" / f"fold{row['fold']}" / info.file_name)
        assert np.abs(mix - (fg + bg)).max() <= 1 / 32768 + 1e-6  # 16-bit rounding only
        assert measured_snr_db(fg.astype(np.float64), mix) == pytest.approx(float(detail["snr_db"]), abs=0.5)
        assert np.abs(fg).max() <= 0.5 + 1e-6
        assert (10 <= info.snr_db <= 20) if info.salience == 1 else (0 <= info.snr_db <= 10)


def _index_of(row: dict[str, str]) -> int:
    """The clip index behind a metadata row (fsIDs are unique, so find the one that renders to it)."""
    c = int(row["classID"])
    return next(i for i in range(CLIPS) if urban.pseudo_fs_id(SEED, c, i) == int(row["fsID"]))


# ---- the classes are what they say ----

def test_classes_differ_more_than_clips_of_one_class() -> None:
    profiles = {c: [_profile(urban.render_clip(SEED, c, i)[0]) for i in range(CLIPS)]
                for c in range(len(urban.CLASSES))}
    within = [np.linalg.norm(a - b) for p in profiles.values() for a, b in itertools.combinations(p, 2)]
    between = [np.linalg.norm(a - b) for c, d in itertools.combinations(profiles, 2)
               for a in profiles[c] for b in profiles[d]]
    assert np.mean(between) > 1.5 * np.mean(within), (np.mean(between), np.mean(within))


def _gliding_tone(audio: np.ndarray) -> tuple[float, float, float]:
    """How much audio [N] sounds like one gliding tone, from the strongest 300-4000 Hz bin of each frame:
    (fraction of frames where it stands 15 dB over the band's median, fraction of steps between such frames
    that stay within 12 % in frequency, spread of its log frequency from the 10th to the 90th percentile)."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, 1024)[::256] * np.hanning(1024)
    freqs = np.fft.rfftfreq(1024, 1 / urban.SR)
    band = (freqs >= 300) & (freqs <= 4000)
    power = np.abs(np.fft.rfft(frames)[:, band]) ** 2 + 1e-12
    tonal = 10 * np.log10(power.max(axis=1) / np.median(power, axis=1)) > 15
    peak = np.log(freqs[band][power.argmax(axis=1)])
    steps = np.abs(np.diff(peak))[tonal[1:] & tonal[:-1]]
    if len(steps) < 10:
        return float(tonal.mean()), 0.0, 0.0
    lo, hi = np.percentile(peak[tonal], [10, 90])
    return float(tonal.mean()), float(np.mean(steps < 0.12)), float(hi - lo)


def test_sirens_glide_and_steady_noises_do_not() -> None:
    for c, name in enumerate(urban.CLASSES):
        for i in range(CLIPS):
            tonal, smooth, spread = _gliding_tone(urban.render_clip(SEED, c, i)[0])
            glides = tonal > 0.5 and smooth > 0.85 and spread > 0.05
            if name == "siren":
                assert glides, (name, i, tonal, smooth, spread)
            elif name in ("air_conditioner", "engine_idling", "jackhammer", "gun_shot"):
                assert not glides, (name, i, tonal, smooth, spread)


# ---- bad input ----

@pytest.mark.parametrize("kwargs, named", [
    ({"clips_per_class": 0}, "clips_per_class"), ({"clips_per_class": 2.5}, "clips_per_class"),
    ({"clips_per_class": True}, "clips_per_class"), ({"seed": -1}, "seed"), ({"workers": 0}, "workers"),
])
def test_bad_arguments_raise_data_error(tmp_path: Path, kwargs: dict, named: str) -> None:
    args = {"clips_per_class": 1, "seed": 0, "workers": 1, "progress": False} | kwargs
    with pytest.raises(DataError, match=named):
        urban.generate_urban(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_a_foreign_folder_is_never_replaced(tmp_path: Path) -> None:
    real = tmp_path / "UrbanSound8K"
    (real / "metadata").mkdir(parents=True)
    (real / "metadata" / "UrbanSound8K.csv").write_text(REAL_HEADER + "\n")
    with pytest.raises(DataError, match="not a generated data set"):
        urban.generate_urban(real, clips_per_class=1, seed=0, workers=1, progress=False)
    assert (real / "metadata" / "UrbanSound8K.csv").read_text() == REAL_HEADER + "\n"
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        urban.generate_urban(tmp_path / "file", clips_per_class=1, seed=0, workers=1, progress=False)


def test_the_urbansound8k_loader_reads_the_generated_set(dataset: tuple[Path, dict]) -> None:
    from acom.corpora.datasets import UrbanSound8K
    root, summary = dataset
    last = max(int(f) for f, n in summary["clips_per_fold"].items() if n)  # small sets fill the first folds
    train, test = UrbanSound8K(root, range(1, last)), UrbanSound8K(root, [last])
    assert len(train) + len(test) == summary["clips"]
    assert {c.fold for c in train.items} == set(range(1, last)) and {c.fold for c in test.items} == {last}
    audio, clip = test[0]
    assert audio.dtype == np.float32 and 16000 <= len(audio) <= 4 * 16000
    assert urban.CLASSES[clip.label] == clip.class_name and not train.skipped


def test_a_fold_made_alone_is_the_same(dataset: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = dataset
    alone = tmp_path / "fold2"
    urban.generate_urban(alone, clips_per_class=CLIPS, seed=SEED, workers=1, progress=False, folds=(2,))
    rows = _rows(alone)
    assert rows and {r["fold"] for r in rows} == {"2"}
    assert rows == [r for r in _rows(root) if r["fold"] == "2"]
    for r in rows:
        rel = Path("audio") / "fold2" / r["slice_file_name"]
        assert (alone / rel).read_bytes() == (root / rel).read_bytes()
    with pytest.raises(DataError, match="folds must be among"):
        urban.generate_urban(tmp_path / "x", clips_per_class=1, seed=0, workers=1, progress=False, folds=(11,))
