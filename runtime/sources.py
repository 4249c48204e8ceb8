"""What the server keeps per source (a UDP address; ``("serial", url)``): stream contexts, short packets held
until their stream's full packet arrives, and bad-tag counts that get a source ignored for a while."""

from __future__ import annotations

from collections import OrderedDict, deque

from acom.runtime.wire import Contexts, context_of


class SourceContexts:
    """``Contexts`` per source, the least recently heard dropped beyond ``max_sources``, and short (v2:
    compact) packets **held** while their context is missing: a full packet of their stream from the same
    source (a later one, or the one they overtook) releases them. At most ``max_held`` held."""

    def __init__(self, max_sources: int = 10000, max_held: int = 4096) -> None:
        self.max_sources, self.max_held = max_sources, max_held
        self._by_source: OrderedDict = OrderedDict()
        self._held: list[tuple[float, object, tuple[int, int], bytes]] = []  # (arrival, source, context, bytes)

    def get(self, source) -> Contexts:
        c = self._by_source.get(source)
        if c is None:
            c = self._by_source[source] = Contexts()
            if len(self._by_source) > self.max_sources:
                self._by_source.popitem(last=False)
        else:
            self._by_source.move_to_end(source)
        return c

    def hold(self, source, data: bytes, now: float) -> int:
        """Keep a short packet whose context is missing; returns how many old ones were pushed out (lost)."""
        self._held.append((now, source, context_of(data), data))
        over = max(0, len(self._held) - self.max_held)
        del self._held[:over]
        return over

    def release(self, source, context: tuple[int, int]) -> list[bytes]:
        """The held packets of ``source`` for this context (``Packet.context``), oldest first."""
        out = [h[3] for h in self._held if h[1] == source and h[2] == context]
        if out:
            self._held = [h for h in self._held if not (h[1] == source and h[2] == context)]
        return out

    def expire(self, now: float, timeout: float) -> int:
        """Forget packets held ``timeout`` seconds or more (all of them when ``timeout`` is 0); returns how many."""
        gone = 0  # held in arrival order: the expired ones are a prefix (called every tick, usually empty)
        while gone < len(self._held) and (not timeout or now - self._held[gone][0] >= timeout):
            gone += 1
        del self._held[:gone]
        return gone


class TagGuard:
    """Ignores a source that sends too many packets with a bad tag: a 4-byte tag must not be guessed at line
    rate. More than ``limit`` bad tags within ``window`` seconds -> the source is ignored for ``ban`` seconds
    (its packets are dropped before any HMAC is computed). At most ``max_sources`` sources are tracked."""

    def __init__(self, limit: int = 64, window: float = 60.0, ban: float = 300.0, max_sources: int = 10000) -> None:
        self.limit, self.window, self.ban, self.max_sources = limit, window, ban, max_sources
        self._bad: OrderedDict = OrderedDict()  # source -> deque of times of its recent bad tags
        self._banned: dict = {}  # source -> until when

    def ignored(self, source, now: float) -> bool:
        until = self._banned.get(source)
        if until is None:
            return False
        if now < until:
            return True
        del self._banned[source]
        return False

    def bad_tag(self, source, now: float) -> bool:
        """Count a bad tag from ``source``; True when this one gets the source ignored."""
        times = self._bad.get(source)
        if times is None:
            times = self._bad[source] = deque()
            if len(self._bad) > self.max_sources:
                self._bad.popitem(last=False)
        self._bad.move_to_end(source)
        times.append(now)
        while times and now - times[0] > self.window:
            times.popleft()
        if len(times) > self.limit:
            self._banned[source] = now + self.ban
            times.clear()
            return True
        return False

    @property
    def banned(self) -> int:
        return len(self._banned)
