"""The generated speech set against LibriSpeech's format, its determinism, splits and SNRs."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acom.corpora.synth import text, voices
from acom.corpora.synth.noise import measured_snr_db
from acom.corpora.synth.speech import TEST_SNRS_DB, generate_speech
from acom.errors import DataError
from tests.conftest import SMALL_SPEECH

SUBSETS = ("train", "dev", "test-clean", "test-noisy")


def _transcripts(root: Path, subset: str) -> dict[str, str]:
    out = {}
    for trans in (root / subset).glob("*/*/*.trans.txt"):
        for line in trans.read_text().splitlines():
            uid, text_ = line.split(" ", 1)
            out[uid] = text_
    return out


def test_layout_matches_librispeech(speech_set: Path) -> None:
    for subset in SUBSETS:
        flacs = sorted((speech_set / subset).rglob("*.flac"))
        assert flacs, subset
        for f in flacs:
            spk, chap = f.parent.parent.name, f.parent.name
            assert f.relative_to(speech_set / subset).parts[:2] == (spk, chap)
            assert re.fullmatch(rf"{spk}-{chap}-\d{{4}}", f.stem), f
            info = sf.info(str(f))
            assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
        for trans in (speech_set / subset).glob("*/*/*.trans.txt"):
            spk, chap = trans.parent.parent.name, trans.parent.name
            assert trans.name == f"{spk}-{chap}.trans.txt"
            lines = trans.read_text().splitlines()
            assert lines == sorted(lines)
            for line in lines:
                m = re.fullmatch(rf"({spk}-{chap}-\d{{4}}) ([A-Z']+( [A-Z']+)*)", line)
                assert m, line
                assert (trans.parent / f"{m.group(1)}.flac").is_file()
        assert len(_transcripts(speech_set, subset)) == len(flacs)
    assert (speech_set / "SPEAKERS.TXT").read_text().startswith(";ID")


def test_no_speaker_or_sentence_overlap(speech_set: Path) -> None:
    spk = {s: {p.name for p in (speech_set / s).iterdir() if p.is_dir()} for s in SUBSETS}
    sentences = {s: set(_transcripts(speech_set, s).values()) for s in SUBSETS}
    assert not spk["train"] & (spk["test-clean"] | spk["test-noisy"])
    assert spk["dev"] <= spk["train"], "dev is read by train voices"
    assert spk["test-clean"] == {str(v.speaker_id) for v in voices.voices_for("test")}
    assert not sentences["train"] & (sentences["dev"] | sentences["test-clean"] | sentences["test-noisy"])
    assert not sentences["dev"] & sentences["test-clean"]
    # the split is by sentence, over the whole text, not only over what this small set drew
    pools = text.sentences()
    assert not set(pools["train"]) & set(pools["test"]) and not set(pools["dev"]) & set(pools["test"])


def test_voice_table_keeps_test_voices_out_of_train() -> None:
    train, test = voices.voices_for("train"), voices.voices_for("test")
    assert {v.name for v in train}.isdisjoint(v.name for v in test)
    assert not {v.voice for v in train if v.engine != "espeak-ng"} & {"slt", "cmu_us_slt_arctic_hts"}
    assert not {v.variant for v in train} & {"f4", "m4", "m8"}
    assert not {v.voice for v in train} & {"en-029"}
    assert {v.sex for v in train} == {"M", "F"}, "train has female-sounding voices too"


def test_test_noisy_snr_within_half_a_db(speech_set: Path) -> None:
    with (speech_set / "test-noisy" / "noise.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {float(r["snr_db"]) for r in rows} == set(TEST_SNRS_DB)
    for r in rows:
        spk, chap, _ = r["utterance_id"].split("-")
        rel = Path(spk) / chap / f"{r['utterance_id']}.flac"
        clean, _ = sf.read(str(speech_set / "test-clean" / rel), dtype="float64")
        noisy, _ = sf.read(str(speech_set / "test-noisy" / rel), dtype="float64")
        assert len(clean) == len(noisy)
        assert abs(measured_snr_db(clean, noisy) - float(r["snr_db"])) < 0.5, r
        assert np.abs(noisy).max() < 1.0, "no clipping"


def test_test_noise_never_heard_in_train(speech_set: Path) -> None:
    with (speech_set / "test-noisy" / "noise.csv").open() as f:
        test_noise = {r["noise"] for r in csv.DictReader(f) if r["noise"].startswith("opensfx")}
    with (speech_set / "train" / "augment.csv").open() as f:
        train_noise = {r["noise"] for r in csv.DictReader(f) if r["noise"].startswith("opensfx")}
    assert test_noise and not test_noise & train_noise


def test_same_seed_identical_files_any_worker_count(speech_set: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_speech(again, dataclasses.replace(SMALL_SPEECH, workers=1), progress=False)
    a = sorted(p.relative_to(speech_set) for p in speech_set.rglob("*") if p.is_file())
    b = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert a == b
    for rel in a:
        if rel.name == "synth_manifest.json":
            continue  # records the worker count
        assert (speech_set / rel).read_bytes() == (again / rel).read_bytes(), rel
    m = json.loads((again / "synth_manifest.json").read_text())
    assert m["subsets"] == json.loads((speech_set / "synth_manifest.json").read_text())["subsets"]


def test_other_seed_other_set(speech_set: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate_speech(other, dataclasses.replace(SMALL_SPEECH, seed=SMALL_SPEECH.seed + 1, minutes=0.1),
                    progress=False)
    assert set(_transcripts(other, "test-clean").values()) != set(_transcripts(speech_set, "test-clean").values())


def test_bad_arguments_and_foreign_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="minutes"):
        generate_speech(tmp_path / "x", dataclasses.replace(SMALL_SPEECH, minutes=0), progress=False)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("do not delete")
    with pytest.raises(DataError, match="not a generated data set"):
        generate_speech(foreign, SMALL_SPEECH, progress=False)
    assert (foreign / "thesis.txt").read_text() == "do not delete"


def test_a_subset_made_alone_is_the_same(speech_set: Path, tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    generate_speech(alone, dataclasses.replace(SMALL_SPEECH, subsets=("test-clean",)), progress=False)
    assert sorted(p.name for p in alone.iterdir()) == ["SPEAKERS.TXT", "synth_manifest.json", "test-clean",
                                                         "test-noisy"]
    for subset in ("test-clean", "test-noisy"):
        files = sorted(p.relative_to(alone) for p in (alone / subset).rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(speech_set) for p in (speech_set / subset).rglob("*") if p.is_file())
        for rel in files:
            assert (alone / rel).read_bytes() == (speech_set / rel).read_bytes(), rel
