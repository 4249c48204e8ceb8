"""The replay state file: what one server saved, the next one loads; a file that is not one is named."""

from __future__ import annotations

import pytest

from acom.errors import AcomError
from acom.runtime.replay_state import load_state, save_state
from acom.runtime.streams import Reassembler


def test_saved_ids_load_into_the_next_reassembler(tmp_path) -> None:
    before = Reassembler(keyed=True)
    before.load_closed_ids({7: bytes([0b101]) + bytes(8191)})  # streams 0 and 2 of device 7 ended
    save_state(tmp_path / "s.json", before.closed_ids())
    after = Reassembler(keyed=True)
    after.load_closed_ids(load_state(tmp_path / "s.json"))
    assert [after._closed_reason((7, i), 0.0) for i in range(4)] == ["replay", None, "replay", None]
    assert load_state(tmp_path / "missing.json") == {} and list(tmp_path.iterdir()) == [tmp_path / "s.json"]


def test_a_file_that_is_not_a_state_file_is_named(tmp_path) -> None:
    bad = tmp_path / "keys.json"
    bad.write_text('{"7": "abcd"}')
    with pytest.raises(AcomError, match="keys.json: not a replay state file"):
        load_state(bad)
