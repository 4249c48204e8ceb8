"""The loaders on generated data and on damaged input: clear DataErrors, conversions and skips counted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acom.core.audio import load_audio
from acom.corpora.datasets import AudioFolder, LibriSpeech, UrbanSound8K
from acom.errors import DataError


def test_librispeech_reads_generated_subsets(speech_set: Path) -> None:
    manifest = json.loads((speech_set / "synth_manifest.json").read_text())
    for subset in ("train", "dev", "test-clean", "test-noisy"):
        ds = LibriSpeech(speech_set, subset)
        assert len(ds) == manifest["subsets"][subset]["utterances"]
        audio, utt = ds[len(ds) - 1]
        assert audio.dtype == np.float32 and audio.ndim == 1 and len(audio) > 16000 * 0.5
        assert utt.transcript and utt.utterance_id.startswith(f"{utt.speaker_id}-{utt.chapter_id}-")
        assert not ds.skipped and not ds.converted


def _copy_subset(speech_set: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ls"
    shutil.copytree(speech_set / "test-clean", root / "test-clean")
    return root


def test_missing_subset_lists_what_exists(speech_set: Path) -> None:
    with pytest.raises(DataError, match=r"train-clean-100.*test-clean"):
        LibriSpeech(speech_set, "train-clean-100")


def test_empty_transcript_is_an_error_or_a_counted_skip(speech_set: Path, tmp_path: Path) -> None:
    root = _copy_subset(speech_set, tmp_path)
    trans = sorted(root.glob("test-clean/*/*/*.trans.txt"))[0]
    uid = trans.read_text().split()[0]
    trans.write_text(f"{uid}\n")
    with pytest.raises(DataError, match=rf"{trans.name}:1: empty transcript for {uid}"):
        LibriSpeech(root, "test-clean")
    ds = LibriSpeech(root, "test-clean", strict=False)
    assert ds.skipped["skipped: empty transcript"] == 1
    assert ds.skipped["skipped: audio without transcript"] == 1
    assert uid not in {u.utterance_id for u in ds.items}


def test_missing_audio_named(speech_set: Path, tmp_path: Path) -> None:
    root = _copy_subset(speech_set, tmp_path)
    flac = sorted(root.glob("test-clean/*/*/*.flac"))[0]
    flac.unlink()
    with pytest.raises(DataError, match=rf"{flac.name} is missing"):
        LibriSpeech(root, "test-clean")


def test_truncated_and_corrupt_audio(speech_set: Path, tmp_path: Path) -> None:
    root = _copy_subset(speech_set, tmp_path)
    flacs = sorted(root.glob("test-clean/*/*/*.flac"))
    data = flacs[0].read_bytes()
    flacs[0].write_bytes(data[: len(data) // 2])
    flacs[1].write_bytes(b"this is not audio" * 100)
    ds = LibriSpeech(root, "test-clean")
    by_path = {u.path: i for i, u in enumerate(ds.items)}
    with pytest.raises(DataError, match=rf"{flacs[0].name}: (truncated|not a readable)"):
        ds[by_path[flacs[0]]]
    with pytest.raises(DataError, match=rf"{flacs[1].name}: not a readable audio file"):
        ds[by_path[flacs[1]]]
    with pytest.raises(DataError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_stereo_and_other_rates_are_converted_and_counted(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(str(tmp_path / "a.wav"), np.stack([tone, tone], axis=1), 44100)
    sf.write(str(tmp_path / "b.wav"), tone[:22050], 22050)
    (tmp_path / "metadata.csv").write_text("file,label\na.wav,tone\nb.wav,beep\n")
    ds = AudioFolder(tmp_path)
    audio, clip = ds[0]
    assert clip.class_name == "tone" and ds.class_names == ["beep", "tone"] and clip.label == 1
    assert abs(len(audio) - 16000) <= 1
    # 440 Hz survives the resampling: the spectral peak is within one bin
    assert abs(np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / len(audio) - 440) <= 1.0
    ds[1]
    assert ds.converted == {"downmixed": 1, "resampled": 2}


def test_audio_folder_transcripts_and_bad_csv(tmp_path: Path) -> None:
    sf.write(str(tmp_path / "x.flac"), np.zeros(8000, dtype=np.float32) + 0.1, 16000)
    (tmp_path / "metadata.csv").write_text("file,transcript\nx.flac,hello world\ny.flac,missing file\n")
    with pytest.raises(DataError, match="y.flac is missing"):
        AudioFolder(tmp_path)
    ds = AudioFolder(tmp_path, strict=False)
    assert ds.task == "asr" and ds.items[0].transcript == "HELLO WORLD"
    assert ds.skipped == {"skipped: missing audio": 1}
    (tmp_path / "bad.csv").write_text("path,text\nx.flac,hi\n")
    with pytest.raises(DataError, match=r"bad.csv: missing columns \['file'\]"):
        AudioFolder(tmp_path, csv_name="bad.csv")
    (tmp_path / "empty.csv").write_text("file,label\n")
    with pytest.raises(DataError, match="empty"):
        AudioFolder(tmp_path, csv_name="empty.csv")


def test_urbansound_csv_errors(tmp_path: Path) -> None:
    (tmp_path / "metadata").mkdir()
    csv_path = tmp_path / "metadata" / "UrbanSound8K.csv"
    csv_path.write_text("slice_file_name,fsID,start,end,fold,classID\n")
    with pytest.raises(DataError, match=r"missing columns \['salience', 'class'\]"):
        UrbanSound8K(tmp_path, [1])
    with pytest.raises(DataError, match="folds must be among 1..10"):
        UrbanSound8K(tmp_path, [0, 11])
    (tmp_path / "audio" / "fold1").mkdir(parents=True)
    sf.write(str(tmp_path / "audio" / "fold1" / "1-3-0-0.wav"), np.zeros(800), 16000)
    csv_path.write_text("slice_file_name,fsID,start,end,salience,fold,classID,class\n"
                        "1-3-0-0.wav,1,0,0.05,1,1,3,siren\n")
    with pytest.raises(DataError, match="class 'siren' does not match classID 3"):
        UrbanSound8K(tmp_path, [1])
