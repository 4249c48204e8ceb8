"""The server's counters, exposed in Prometheus text format (prometheus_client) on a loopback port.

Latency percentiles come from the last ``window`` results (a Prometheus histogram is also exported, for
aggregation across servers). ``snapshot()`` gives the same numbers as a dict for the summary line.
"""

from __future__ import annotations

import collections
import threading

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0)


class Metrics:
    """Packets accepted and rejected by reason, streams, results and latency."""

    def __init__(self, window: int = 10000) -> None:
        self.registry = r = CollectorRegistry()
        self.packets = Counter("acom_packets", "Packets by outcome (accepted, or the reason it was rejected)",
                               ["outcome"], registry=r)
        self.bytes = Counter("acom_received_bytes", "Bytes received, by transport", ["transport"], registry=r)
        self.frames = Counter("acom_frames", "Frames given to the tail, received or lost", ["kind"], registry=r)
        self.streams_open = Gauge("acom_streams_open", "Streams open now", registry=r)
        self.streams_open_max = Gauge("acom_streams_open_max", "Most streams open at once so far", registry=r)
        self.overloaded = Gauge("acom_overloaded", "1 while new streams are refused (the tail's lag is over the "
                                "admission limit)", registry=r)
        self.stream_slots_max = Gauge("acom_stream_slots_max", "Most admission slots held at once so far (at "
                                      "capacity: what --admit-streams should be)", registry=r)
        self.streams = Counter("acom_streams_ended", "Streams ended, by why", ["why"], registry=r)
        self.results = Counter("acom_results", "Results written (partial or final)", ["kind"], registry=r)
        self.batches = Counter("acom_tail_batches", "Tail steps run", registry=r)
        self.tail_errors = Counter("acom_tail_errors", "Streams whose tail step raised (a bug: see stderr)",
                                   registry=r)
        self.batch_streams = Counter("acom_tail_batch_streams", "Streams over all tail steps", registry=r)
        self.latency = Histogram("acom_latency_seconds", "Packet arrival to its result written",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.step = Histogram("acom_tail_step_seconds", "Duration of one batched tail step",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.quantile = Gauge("acom_latency_recent_seconds", "Latency percentiles of recent results",
                              ["quantile"], registry=r)
        self._recent: collections.deque[float] = collections.deque(maxlen=window)
        self._steps: collections.deque[float] = collections.deque(maxlen=window)
        self._lock = threading.Lock()
        self._server = None

    def count(self, outcome: str, n: int = 1) -> None:
        if n:
            self.packets.labels(outcome).inc(n)

    def observe_latency(self, seconds: float) -> None:
        self.latency.observe(seconds)
        with self._lock:
            self._recent.append(seconds)

    def observe_step(self, seconds: float) -> None:
        self.step.observe(seconds)
        with self._lock:
            self._steps.append(seconds)

    def percentiles(self) -> dict[str, float]:
        """p50/p90/p99/max of recent latencies in milliseconds (empty when there are none)."""
        with self._lock:
            lat = np.array(self._recent)
        if not lat.size:
            return {}
        out = {f"p{q}": float(np.percentile(lat, q)) * 1e3 for q in (50, 90, 99)}
        out["max"] = float(lat.max()) * 1e3
        return out

    def refresh_gauges(self) -> None:
        """Set the endpoint's recent-latency percentiles (the server calls this once a second)."""
        for name, ms in self.percentiles().items():
            if name != "max":
                self.quantile.labels(f"0.{name[1:]}").set(ms / 1e3)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Start the text endpoint (a daemon thread) on ``host:port``; returns the port actually bound."""
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        return self._server.server_address[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def snapshot(self) -> dict:
        """Every counter as plain numbers: {"packets": {outcome: n}, "streams_ended": {...}, ...}."""
        out: dict = {"packets": {}, "received_bytes": {}, "frames": {}, "streams_ended": {}, "results": {}}
        for metric in self.registry.collect():
            for s in metric.samples:
                if s.name.endswith("_created") or s.name.startswith(("acom_latency", "acom_tail_step")):
                    continue
                name = s.name.removeprefix("acom_").removesuffix("_total")
                label = next(iter(s.labels.values()), None)
                if label is None:
                    out[name] = s.value
                else:
                    out.setdefault(name, {})[label] = s.value
        out["latency_ms"] = self.percentiles()
        with self._lock:
            steps = np.array(self._steps)
        if steps.size:
            out["step_ms"] = {f"p{q}": float(np.percentile(steps, q)) * 1e3 for q in (50, 90, 99)}
            out["step_ms"]["max"] = float(steps.max()) * 1e3
        return out
