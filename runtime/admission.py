"""Admission control: whether a packet may open a new stream.

Two rules, both measured rather than guessed; a packet refused by either is counted as ``overload`` and its
stream stays refused to its end (no stream admitted halfway; a recovering server is not flooded by every
refused stream at once). Streams already open are always served on.

- **by slots**: at most ``max_slots`` streams hold a slot, the number of devices the server served within its
  latency target on this machine (``bench/serve_overload.py`` measures it). A stream holds a slot from its
  first packet until one packet's duration (its first packet's) after its end, and its device's next stream
  takes that slot over. So a slot is held for as long as the audio sent through it: a device that streams
  utterance after utterance holds one slot throughout, and a slot freed by a stream's end is not refilled by
  another device's stream a packet early (its first packet brings a whole packet of audio at once: counting
  only open streams lets the same number of slots bring a third more audio with 4 s utterances).
- **by lag**: the tail's lag (after each step, how long its oldest update waited, smoothed by 0.3 a step); while
  it is over ``lag_limit_ms``, no new stream, until it falls below half of it (a slower day than the one
  measured, or a heavier stream mix).
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict, defaultdict


class Admission:
    """The two rules, the slots held after streams ended and the streams refused so far.

    Streams are keyed ``(device_id, stream_id)``; the server says when one opened (``opened``) and ended
    (``ended``), and how many are open (its stream table, which is the truth)."""

    def __init__(self, frame_rate: float, max_slots: int | None, lag_limit_ms: float | None,
                 max_refused: int) -> None:
        self.frame_rate, self.max_slots, self.lag_limit_ms = frame_rate, max_slots, lag_limit_ms
        self.max_refused = max_refused
        self.lag_ms = 0.0
        self.overloaded = False  # the lag rule holds: no new stream
        self.slots_max = 0  # the most slots held at once (at capacity: what max_slots should be)
        self._packet_s: dict = {}  # open stream -> its first packet's seconds of audio
        self._held: dict[int, set[int]] = defaultdict(set)  # device -> ids of the slots its ended streams hold
        self._expiry: list[tuple[float, int, int]] = []  # heap of (release time, slot id, device)
        self._ids = itertools.count()
        self._n_held = 0
        self._refused: OrderedDict = OrderedDict()  # oldest forgotten first

    def held(self, now: float) -> int:
        """Slots held by ended streams whose packet's duration has not passed (released ones dropped)."""
        while self._expiry and self._expiry[0][0] <= now:
            _, slot, device = heapq.heappop(self._expiry)
            if slot in self._held[device]:  # not taken over by the device's next stream
                self._held[device].discard(slot)
                self._n_held -= 1
                if not self._held[device]:
                    del self._held[device]
        return self._n_held

    def admits(self, key: tuple[int, int], n_open: int, is_open: bool, end_of_stream: bool, now: float) -> bool:
        """Whether a packet of stream ``key`` may go on, ``n_open`` streams being open; a refusal is remembered
        to the stream's end."""
        if key not in self._refused:
            if is_open:
                return True
            full = (self.max_slots is not None and key[0] not in self._held
                    and n_open + self.held(now) >= self.max_slots)
            if not (full or self.overloaded):
                return True
        self._refused[key] = None
        self._refused.move_to_end(key)
        if end_of_stream:
            self._refused.pop(key)  # its id may open a new stream later
        elif len(self._refused) > self.max_refused:
            self._refused.popitem(last=False)
        return False

    def opened(self, key: tuple[int, int], frames: int, n_open: int, now: float) -> None:
        """Stream ``key`` opened with a packet of ``frames`` frames (``n_open`` open with it): it takes over a
        slot its device still holds, if any."""
        self._packet_s[key] = frames / self.frame_rate
        slots = self._held.get(key[0])
        if slots:
            slots.pop()
            self._n_held -= 1
            if not slots:
                del self._held[key[0]]
        self.slots_max = max(self.slots_max, n_open + self.held(now))

    def ended(self, key: tuple[int, int], now: float) -> None:
        """Stream ``key`` ended: its device holds its slot for one more packet's duration."""
        seconds = self._packet_s.pop(key, None)
        if seconds is None:  # not opened through ``opened`` (nothing held)
            return
        slot = next(self._ids)
        self._held[key[0]].add(slot)
        self._n_held += 1
        heapq.heappush(self._expiry, (now + seconds, slot, key[0]))

    def step_done(self, oldest: float, now: float) -> None:
        """Update the lag with a finished step whose oldest update arrived at ``oldest``."""
        self.lag_ms = 0.7 * self.lag_ms + 0.3 * 1000 * (now - oldest)
        if self.lag_limit_ms is None:
            return
        if not self.overloaded and self.lag_ms > self.lag_limit_ms:
            self.overloaded = True
        elif self.overloaded and self.lag_ms < self.lag_limit_ms / 2:
            self.overloaded = False
