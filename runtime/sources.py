"""What the server keeps per source (a UDP address; ``("serial", url)``): stream contexts, short packets held
until their stream's full packet arrives, and bad-tag counts that get a source ignored for a while."""

from __future__ import annotations

from collections import OrderedDict, deque

from acom.runtime.wire import Contexts, Packet, context_of, decode_packet


class SourceContexts:
    """``Contexts`` per source, the least recently heard dropped beyond ``max_sources``, and short (v2:
    compact) packets **held** while their context is missing: a full packet of their stream from the same
    source (a later one, or the one they overtook) releases them. At most ``max_held`` held in all and
    ``max_held_per_source`` per source, so that one source cannot crowd out the others' held packets.

    A source's table is kept only once a packet from it has passed its checks (``keep``): traffic that fails
    them (a forged or damaged packet, a flood from new addresses) creates and evicts nothing."""

    def __init__(self, max_sources: int = 10000, max_held: int = 4096, max_held_per_source: int = 256) -> None:
        self.max_sources, self.max_held, self.max_held_per_source = max_sources, max_held, max_held_per_source
        self._by_source: OrderedDict = OrderedDict()
        self._held: list[tuple[float, object, tuple[int, int], bytes]] = []  # (arrival, source, context, bytes)
        self._held_by: dict = {}  # source -> packets of it held

    def get(self, source) -> Contexts:
        """The source's contexts: its kept table, or a new one that ``keep`` registers if a packet passes."""
        c = self._by_source.get(source)
        if c is None:
            return Contexts()
        self._by_source.move_to_end(source)
        return c

    def decode(self, source, data: bytes, keys: dict[int, bytes] | None = None) -> Packet:
        """``decode_packet`` with the source's contexts, which are kept if the packet passes (WireError else)."""
        contexts = self.get(source)
        p = decode_packet(data, keys, contexts)
        self.keep(source, contexts)
        return p

    def keep(self, source, contexts: Contexts) -> None:
        """Register ``contexts`` for ``source`` (a packet from it passed its checks)."""
        if source not in self._by_source:
            self._by_source[source] = contexts
            if len(self._by_source) > self.max_sources:
                self._by_source.popitem(last=False)

    def hold(self, source, data: bytes, now: float) -> int:
        """Keep a short packet whose context is missing; returns how many were dropped for room (lost): this
        one when its source holds its share already, else the oldest beyond ``max_held``."""
        if self._held_by.get(source, 0) >= self.max_held_per_source:
            return 1
        self._held.append((now, source, context_of(data), data))
        self._held_by[source] = self._held_by.get(source, 0) + 1
        over = max(0, len(self._held) - self.max_held)
        self._forget(self._held[:over])
        del self._held[:over]
        return over

    def _forget(self, gone: list) -> None:
        for h in gone:
            n = self._held_by[h[1]] - 1
            if n:
                self._held_by[h[1]] = n
            else:
                del self._held_by[h[1]]

    def release(self, source, context: tuple[int, int]) -> list[bytes]:
        """The held packets of ``source`` for this context (``Packet.context``), oldest first."""
        out = [h for h in self._held if h[1] == source and h[2] == context]
        if out:
            self._held = [h for h in self._held if not (h[1] == source and h[2] == context)]
            self._forget(out)
        return [h[3] for h in out]

    def expire(self, now: float, timeout: float) -> int:
        """Forget packets held ``timeout`` seconds or more (all of them when ``timeout`` is 0); returns how many."""
        gone = 0  # held in arrival order: the expired ones are a prefix (called every tick, usually empty)
        while gone < len(self._held) and (not timeout or now - self._held[gone][0] >= timeout):
            gone += 1
        self._forget(self._held[:gone])
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
