"""Admission control alone (runtime/admission.py), with the clock passed in: slots held after a stream's end and
taken over by its device, the refused streams remembered to their end within a bound, the lag's hysteresis."""

from __future__ import annotations

from acom.runtime.admission import Admission


def test_a_slot_is_held_one_packet_after_the_end_and_taken_over_by_the_device() -> None:
    a = Admission(frame_rate=25.0, max_slots=2, lag_limit_ms=None, max_refused=10)
    assert a.admits((1, 1), 0, False, False, 0.0)
    a.opened((1, 1), 25, 1, 0.0)  # a 1 s packet
    assert a.admits((2, 1), 1, False, False, 0.1)
    a.opened((2, 1), 50, 2, 0.1)  # a 2 s packet
    assert not a.admits((3, 1), 2, False, False, 0.2)  # both slots held
    a.ended((1, 1), 1.0)
    assert a.held(1.5) == 1 and not a.admits((3, 2), 1, False, False, 1.5)  # device 1's slot until 2.0
    assert a.admits((1, 2), 1, False, False, 1.5)  # device 1's next stream takes it over
    a.opened((1, 2), 25, 2, 1.5)
    assert a.held(1.5) == 0 and a.slots_max == 2
    a.ended((2, 1), 3.0)
    assert not a.admits((3, 3), 1, False, False, 4.9)  # device 2 holds its slot 2 s (its packet's length)
    assert a.admits((3, 4), 1, False, False, 5.0) and a.held(5.0) == 0


def test_a_refused_stream_stays_refused_to_its_end_and_the_memory_is_bounded() -> None:
    a = Admission(frame_rate=25.0, max_slots=1, lag_limit_ms=None, max_refused=3)
    a.opened((1, 1), 25, 1, 0.0)
    assert not a.admits((2, 1), 1, False, False, 0.0)
    assert not a.admits((2, 1), 0, False, False, 0.1)  # refused to its end, even with a slot free now
    assert not a.admits((2, 1), 0, False, True, 0.2)  # its end: forgotten, the id may open a new stream
    assert a.admits((2, 1), 0, False, False, 0.3)
    for s in range(10):
        a.admits((9, s), 1, False, False, 0.4)
    assert len(a._refused) == 3  # the oldest forgotten first


def test_the_lag_rule_refuses_above_its_limit_until_half_of_it() -> None:
    a = Admission(frame_rate=25.0, max_slots=None, lag_limit_ms=100.0, max_refused=10)
    for t in range(5):
        a.step_done(oldest=float(t), now=t + 0.5)  # 500 ms steps
    assert a.overloaded and not a.admits((1, 1), 0, False, False, 5.0)
    assert a.admits((2, 2), 0, True, False, 5.0)  # open streams are served on
    while a.lag_ms >= 50.0:
        assert a.overloaded
        a.step_done(oldest=10.0, now=10.01)
    assert not a.overloaded and a.admits((3, 1), 0, False, False, 11.0)
