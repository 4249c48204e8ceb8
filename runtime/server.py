"""`acom serve`: packets from UDP and serial ports -> per-stream reassembly -> the batched tail -> JSON lines.

One asyncio loop receives, checks and reassembles (cheap, pure functions); one worker thread runs the tail
(``engine.step``) on every stream with new frames at once, so a step's cost is shared by many streams.
Batching: a step starts when the oldest waiting update is ``max_delay`` old, or at once when ``max_batch``
streams wait; while a step runs, new packets gather for the next one. Serial ports are read by one thread
each, so a slow or dead port never stalls UDP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from acom.core.tasks import TASKS
from acom.errors import WireError
from acom.runtime.admission import Admission
from acom.runtime.bundle import Bundle
from acom.runtime.engine import Result, Work, release_heap
from acom.runtime.engines import make_engine
from acom.runtime.metrics import Metrics
from acom.runtime.replay_state import load_state, save_state
from acom.runtime.sources import SourceContexts, TagGuard
from acom.runtime.streams import Delivery, Reassembler, ReassemblyConfig, StreamKey
from acom.runtime.wire import Packet, SerialDeframer, codebook_id, packet_codes

BIG_STEP_FRAMES = 1024  # a step of this many frames or more gives the heap's free pages back (release_heap)
TRIM_EVERY_S = 2.0  # ... at most this often


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """How the server batches and what it writes."""

    max_batch: int = 512  # streams in one tail step at most
    max_delay: float = 0.005  # seconds the oldest waiting update may wait for others to join its step
    device: str = "cpu"  # where the tail runs ("cuda" when present)
    window_s: float = 4.0  # classifier: seconds of audio each label covers (the last ones)
    engine: str = "auto"  # ASR: "slot" (shared state tensors), "stream" (per-stream state) or auto (slot)
    dtype: str = "float32"  # the ASR slot engine's blocks: float32 or bfloat16
    buckets: bool = False  # the ASR slot engine's tensor sizes rounded up to a few (slot_engine.py)
    partial: bool = True  # write partial results, not only final ones
    max_bad_tags: int = 64  # with keys: a source with more bad tags than this in a minute is ignored for 5 min
    max_packet_s: float = 10.0  # audio a packet may carry; more is refused ("packet_frames"): bounded tail work
    max_gap_s: float = 30.0  # audio a packet may claim was lost before it; more is refused ("gap")
    # frames one tail step runs at most, all streams together (a long gap counts as the engine's gap_keep):
    # a step's memory grows with its frames (up to ~57 KB a frame for the shipped ASR tail), so a burst of big
    # packets is run over several steps instead of at once; a stream's chunks beyond it wait for the next step
    max_step_frames: int = 2048
    max_backlog_s: float = 60.0  # audio a stream may have waiting for the tail; more is refused ("backlog")
    state: Path | None = None  # with keys: the ended stream ids are kept here across restarts (replay_state.py)
    # admission control (admission.py): packets that would open a new stream are refused ("overload") while the
    # tail's measured lag (the latency of each step's oldest update, smoothed) is over admit_lag_ms, until it
    # falls below half of it, and while admit_streams streams hold a slot (the devices served within the
    # latency target on this machine: bench/serve_overload.py); open streams are served on. None: that rule
    # off (`acom serve` sets a 250 ms lag limit unless told otherwise).
    admit_lag_ms: float | None = None
    admit_streams: int | None = None
    # CPUs the tail's thread (and the torch threads it starts) runs on; None: wherever the system puts it.
    # `acom serve --tail-cpus` keeps the receiving loop off them: checking and refusing packets takes no CPU
    # time from the tail (bench/serve_refusal_cost.py measures what that changes)
    tail_cpus: frozenset[int] | None = None
    reassembly: ReassemblyConfig = field(default_factory=ReassemblyConfig)


def _pin(cpus: frozenset[int] | None) -> None:
    """Pin the calling thread (Linux: the affinity of pid 0 is the calling thread's) to ``cpus``."""
    if cpus:
        os.sched_setaffinity(0, cpus)


class Server:
    """The receive -> reassemble -> batch -> write pipeline; transports call ``handle_bytes``."""

    def __init__(self, bundle: Bundle, out: TextIO, config: ServeConfig = ServeConfig(),
                 keys: dict[int, bytes] | None = None, metrics: Metrics | None = None) -> None:
        self.bundle, self.out, self.config, self.keys = bundle, out, config, keys
        self.metrics = metrics or Metrics()
        self.engine = make_engine(bundle, config.device, config.window_s, config.engine, config.dtype, config.buckets)
        rate = bundle.frame_rate
        self.max_packet_frames = math.ceil(config.max_packet_s * rate)
        self.max_backlog_frames = math.ceil(config.max_backlog_s * rate * self.engine.time_pool)  # tail frames
        self.streams = Reassembler(replace(config.reassembly, max_gap_frames=math.ceil(config.max_gap_s * rate)),
                                   keyed=keys is not None)
        self.book = codebook_id(bundle.manifest.codebook_hash)
        if config.state is not None and keys is not None:
            self.streams.load_closed_ids(load_state(config.state))
        self._saved = self.streams.closed_count
        self.contexts = SourceContexts(config.reassembly.max_streams)  # short-packet contexts per source
        self.guard = TagGuard(config.max_bad_tags, max_sources=config.reassembly.max_streams)
        self.pending: dict[StreamKey, Work] = {}
        self._wake = asyncio.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="acom-tail", initializer=_pin,
                                        initargs=(config.tail_cpus,))
        self._tasks: list[asyncio.Task] = []
        self._closers: list = []
        self.serial_readers: list[SerialReader] = []
        self._stopping = self._busy = False
        self.failure: str | None = None  # why the server stopped on its own (set by fail)
        self.admission = Admission(rate, config.admit_streams, config.admit_lag_ms, config.reassembly.max_streams)
        self._trim_due, self._trimmed = False, 0.0  # a big step's freed memory waits to go back to the system
        self._open_max = 0  # most streams open at once
        self.failed = asyncio.Event()

    # ---- receiving (event loop thread) ----

    def handle_bytes(self, data: bytes, transport: str, source=None, count_bytes: bool = True) -> None:
        """One packet's bytes from ``source`` (a UDP address, ``("serial", url)``): a packet, a held short
        packet (its stream's full packet has not arrived yet), or a rejection counted by reason."""
        if count_bytes:
            self.metrics.bytes.labels(transport).inc(len(data))
        if self.keys is not None and self.guard.ignored(source, time.monotonic()):
            self.metrics.count("ignored")
            return
        self._decode(data, source)

    def _decode(self, data: bytes, source, retried: bool = False) -> None:
        try:
            packet = self.contexts.decode(source, data, self.keys)
        except WireError as e:
            if e.reason == "context" and not retried:  # lost or overtaken full packet: wait for the next one
                self.metrics.count("context", self.contexts.hold(source, data, time.monotonic()))
            else:
                self.metrics.count(e.reason)
                if e.reason == "tag" and self.keys is not None and self.guard.bad_tag(source, time.monotonic()):
                    self.metrics.count("source_ignored")
            return
        self.handle_packet(packet)
        if not packet.compact:
            for held in self.contexts.release(source, packet.context):
                self._decode(held, source, retried=True)

    def handle_packet(self, p: Packet | WireError) -> None:
        """A parsed packet (or a deframer's error): check it against the bundle, reassemble, queue for the tail."""
        if isinstance(p, WireError):
            self.metrics.count(p.reason)
            return
        if self._stopping:
            self.metrics.count("shutdown")
            return
        if p.codebook_id != self.book:
            self.metrics.count("codebook")
            return
        if p.n_frames > self.max_packet_frames:
            self.metrics.count("packet_frames")
            return
        key = (p.device_id, p.stream_id)
        now = time.monotonic()
        was_open = key in self.streams.streams
        if not self.admission.admits(key, len(self.streams.streams), was_open, p.end_of_stream, now):
            self.metrics.count("overload")  # the tail cannot take one more stream: it stays refused to its end
            return
        w = self.pending.get(key)
        if w is not None and sum(self.engine.kept(c) for c in w.chunks) > self.max_backlog_frames:
            self.metrics.count("backlog")  # this stream sends faster than the tail runs it: it loses frames,
            return                         # the others nothing
        try:
            codes = packet_codes(p, self.bundle.codebook_sizes, self.bundle.priors)
        except WireError as e:
            self.metrics.count(e.reason)
            return
        delivery, reason = self.streams.accept(p, codes, now)
        self.metrics.count(reason or "accepted")
        if reason is None and not was_open:  # (a one-packet stream has ended already: _deliver says so)
            self.admission.opened(key, p.n_frames, len(self.streams.streams) + (key not in self.streams.streams), now)
            self.metrics.stream_slots_max.set(self.admission.slots_max)
        self._deliver(delivery)

    def _deliver(self, d: Delivery) -> None:
        for key, chunk in d.chunks:
            self.pending.setdefault(key, Work()).chunks.append(chunk)
            self.metrics.frames.labels("lost" if chunk.codes is None else "received").inc(chunk.n_frames)
        now = time.monotonic()
        for key, why in d.ended:
            self.admission.ended(key, now)
            self.pending.setdefault(key, Work()).ended = True
            self.metrics.streams.labels(why).inc()
        for _, reason in d.dropped:
            self.metrics.count(reason)
        self.metrics.streams_open.set(len(self.streams.streams))
        if len(self.streams.streams) > self._open_max:
            self._open_max = len(self.streams.streams)
            self.metrics.streams_open_max.set(self._open_max)
        if self.pending:
            self._wake.set()

    # ---- the tail (worker thread) and results ----

    async def _batcher(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending:
                oldest = min((c.arrival for w in self.pending.values() for c in w.chunks), default=time.monotonic())
                wait = oldest + self.config.max_delay - time.monotonic()
                if wait > 0 and len(self.pending) < self.config.max_batch and not self._stopping:
                    await asyncio.sleep(wait)
                work, frames = self._take()
                self._busy, started = True, time.monotonic()
                had = {k for k in work if k in self.engine.streams}
                try:
                    results = await loop.run_in_executor(self._pool, self._step, work, frames)
                except Exception as e:  # a bug in the tail must not stop the server: isolate it, say it, go on
                    print(f"acom serve: tail step failed for {len(work)} streams: {e!r}", file=sys.stderr)
                    results = await loop.run_in_executor(self._pool, self._isolate, work, had, e)
                    self._end_failed([r.key for r in results if r.error])
                finally:
                    self._busy = False
                self.metrics.observe_step(time.monotonic() - started)
                self.admission.step_done(oldest, time.monotonic())  # oldest: waiting when the step was chosen
                self.metrics.overloaded.set(int(self.admission.overloaded))
                self.metrics.batches.inc()
                self.metrics.batch_streams.inc(len(work))
                try:
                    self._write(results)
                except (OSError, ValueError) as e:  # a closed pipe, a full disk: no result can reach anyone
                    self.fail(f"cannot write results ({e!r})")

    def _step(self, work: dict[StreamKey, Work], frames: int) -> list[Result]:
        """One tail step (worker thread). After a big one the heap's free pages go back to the system, at most
        once every TRIM_EVERY_S seconds (the ticker catches up): a trim costs the next steps fresh pages."""
        results = self.engine.step(work)
        if frames >= BIG_STEP_FRAMES:
            self._trim_due = True
            self._trim()
        return results

    def _trim(self) -> None:
        now = time.monotonic()
        if self._trim_due and now - self._trimmed >= TRIM_EVERY_S:
            self._trim_due, self._trimmed = False, now
            release_heap()

    def _take(self) -> tuple[dict[StreamKey, Work], int]:
        """A step's work and its frames: waiting streams in order, at most ``max_batch`` of them and
        ``max_step_frames`` frames in all (a step's first chunk always goes, however long); a stream over the
        budget gives its first chunks and waits, last in line, with the rest."""
        work: dict[StreamKey, Work] = {}
        budget, total = self.config.max_step_frames, 0
        for key in list(self.pending)[: self.config.max_batch]:
            w, used, n = self.pending[key], 0, 0
            for c in w.chunks:
                f = self.engine.kept(c)
                if total + used + f > budget and (total or n):
                    break
                used, n = used + f, n + 1
            if n == len(w.chunks):
                work[key] = self.pending.pop(key)
            elif n:
                work[key] = Work(w.chunks[:n])
                del self.pending[key]
                self.pending[key] = Work(w.chunks[n:], w.ended)
            total += used
            if n < len(w.chunks) or total >= budget:
                break
        return work, total

    def _isolate(self, work: dict[StreamKey, Work], had: set, error: Exception) -> list[Result]:
        """After a failed step (worker thread): every stream of it alone. A stream the step created is run again
        from scratch; one with earlier state (which the failed step may have half-updated) or that fails alone
        is dropped with a final result that says so. Every state the step touched is freed or rebuilt."""
        results = []
        for key, w in work.items():
            self.engine.drop(key)
            if key not in had:
                try:
                    results += self.engine.step({key: w})
                    continue
                except Exception as e:  # noqa: BLE001 - the stream's own failure, reported in its result
                    self.engine.drop(key)
                    error = e
            self.metrics.tail_errors.inc()
            results.append(Result(key, True, 0, 0, (-1, -1), math.nan, error=f"tail step failed: {error!r}"))
        return results

    def _end_failed(self, keys: list[StreamKey]) -> None:
        """End streams whose tail failed (event loop thread): their later packets are refused (closed)."""
        now = time.monotonic()
        for key in keys:
            self.pending.pop(key, None)
            if key in self.streams.streams:
                self.streams.end(key, now, "error")
                self.admission.ended(key, now)
                self.metrics.streams.labels("error").inc()

    def _write(self, results: list[Result]) -> None:
        now, wall, rate = time.monotonic(), round(time.time(), 4), self.bundle.frame_rate
        for r in results:
            if not r.final and (not self.config.partial or r.seqs[0] < 0):
                continue
            line = {"type": "final" if r.final else "partial", "time": wall, "device": r.key[0], "stream": r.key[1],
                    "seq": list(r.seqs), "frames": r.frames, "seconds": round(r.frames / rate, 3),
                    "missing_frames": r.missing_frames}
            if r.text is not None:
                line["text"] = r.text
            if r.error is not None:
                line["error"] = r.error
            if r.scores is not None or not TASKS[self.bundle.task].sequence:
                line["label"], line["scores"] = r.label, None if r.scores is None else [round(s, 4) for s in r.scores]
            if not math.isnan(r.arrival):
                latency = now - r.arrival
                line["latency_ms"] = round(latency * 1e3, 2)
                self.metrics.observe_latency(latency)
            self.metrics.results.labels(line["type"]).inc()
            self.out.write(json.dumps(line) + "\n")
        self.out.flush()

    async def _ticker(self) -> None:
        period, last_gauges = max(0.01, self.config.reassembly.reorder_timeout / 4), 0.0
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            self.metrics.count("context", self.contexts.expire(now, self.config.reassembly.idle_timeout))
            self._deliver(self.streams.tick(now))
            if self._trim_due and not self._busy:
                self._trim()
            if now - last_gauges >= 1.0:  # the endpoint's recent-latency percentiles, once a second
                self.metrics.refresh_gauges()
                self._save_state()
                last_gauges = now

    # ---- lifecycle ----

    async def start(self, udp: tuple[str, int] | None = None, serial: list[str] = (), baudrate: int = 115200,
                    metrics_port: int | None = None) -> dict:
        """Open the transports and start serving; returns the addresses actually bound."""
        loop = asyncio.get_running_loop()
        bound: dict = {}
        self._tasks = [asyncio.create_task(self._batcher()), asyncio.create_task(self._ticker())]
        if udp is not None:
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=udp)
            sock = transport.get_extra_info("socket")
            with contextlib.suppress(OSError):  # room for bursts while a step runs (the kernel caps it)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            self._closers.append(transport.close)
            bound["udp"] = transport.get_extra_info("sockname")[:2]
        for url in serial:
            reader = SerialReader(url, baudrate, self, loop)
            self.serial_readers.append(reader)
            reader.start()
            self._closers.append(reader.stop)
        if metrics_port is not None:
            bound["metrics"] = ("127.0.0.1", self.metrics.serve(metrics_port))
            self._closers.append(self.metrics.close)
        return bound

    def _save_state(self) -> None:
        """With keys and ``state``: the ended stream ids to disk, when streams ended since the last save."""
        if self.config.state is None or self.keys is None or self.streams.closed_count == self._saved:
            return
        try:
            save_state(self.config.state, self.streams.closed_ids())
            self._saved = self.streams.closed_count
        except OSError as e:  # replay protection across restarts is lost: say so, keep serving
            self.metrics.count("state_error")
            print(f"acom serve: cannot save {self.config.state} ({e})", file=sys.stderr)

    def fail(self, why: str) -> None:
        """Stop serving on an error the server cannot work around (its output is gone): packets are no longer
        accepted, and ``failed`` is set for whoever runs the server to shut it down."""
        if self.failure is None:
            self.failure = why
            print(f"acom serve: {why}: stopping", file=sys.stderr)
        self._stopping = True
        self.pending.clear()
        self.failed.set()

    async def shutdown(self, timeout: float = 30.0) -> dict:
        """Stop receiving, end every open stream (its final result is written), return the summary. Returns
        within about ``timeout`` seconds even if the tail does not (what is left is counted, not written)."""
        self._stopping = True
        for close in self._closers:
            close()
        self.metrics.count("context", self.contexts.expire(time.monotonic(), 0))  # held, never released
        self._deliver(self.streams.close_all(time.monotonic()))
        self._save_state()
        deadline = time.monotonic() + timeout
        while (self.pending or self._busy) and self.failure is None and time.monotonic() < deadline:
            self._wake.set()  # the batcher runs what is left, without waiting for more
            await asyncio.sleep(0.01)
        if self.pending:
            self.metrics.count("unwritten", len(self.pending))
            self.pending.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=True)
        summary = {"type": "summary", **self.metrics.snapshot(), **({"failure": self.failure} if self.failure else {})}
        with contextlib.suppress(OSError, ValueError):  # the output may be what failed
            self.out.write(json.dumps(summary) + "\n")
            self.out.flush()
        return summary


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: Server) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr) -> None:
        self.server.handle_bytes(data, "udp", addr)

    def error_received(self, exc: Exception) -> None:
        self.server.metrics.count("socket")


class SerialReader(threading.Thread):
    """Reads one serial port (a device, a pty, or a pyserial URL such as socket:// or loop://) in a thread,
    deframes it (COBS) and hands packets to the loop. Reopens the port after an error, once a second."""

    def __init__(self, url: str, baudrate: int, server: Server, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name=f"acom-serial {url}", daemon=True)
        self.url, self.baudrate, self.server, self.loop = url, baudrate, server, loop
        self._stop_event = threading.Event()
        self.port = None
        self.opened = threading.Event()

    def run(self) -> None:
        import serial
        while not self._stop_event.is_set():
            try:
                self.port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.1)
                self.opened.set()  # bytes that arrived before this moment are flushed by pyserial's open
                deframer = SerialDeframer(decode=False)  # decoded in the loop, with the server's contexts
                while not self._stop_event.is_set():
                    data = self.port.read(self.port.in_waiting or 1)
                    if data:
                        self.loop.call_soon_threadsafe(self._hand_over, deframer.feed(data), len(data))
            except (serial.SerialException, OSError, ValueError):
                self.server.metrics.count("serial_error")  # prometheus counters are thread-safe
                self._stop_event.wait(1.0)
            except RuntimeError:  # the event loop closed under us: the server is gone
                return
            finally:
                if self.port is not None:
                    self.port.close()

    def _hand_over(self, items: list, n_bytes: int) -> None:
        self.server.metrics.bytes.labels("serial").inc(n_bytes)
        for item in items:
            if isinstance(item, bytes):
                self.server.handle_bytes(item, "serial", ("serial", self.url), count_bytes=False)
            else:
                self.server.handle_packet(item)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=1.0)
