"""The ten UrbanSound8K classes as procedural generators: numpy only, random parameters per clip.

Each generator takes (rng, n) and returns float audio [n] at 16 kHz; `GENERATORS` maps class name to it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from acom.core.audio import SAMPLE_RATE

SR = SAMPLE_RATE


# ---- signal helpers (numpy only: filters are applied in the frequency domain) ----

def _spectrum_filter(x: np.ndarray, gain: Callable[[np.ndarray], np.ndarray], pad: int = 0) -> np.ndarray:
    """x [n] filtered by a frequency response gain(f_hz) -> [F]; `pad` zeros stop a decaying response wrapping."""
    n = len(x)
    size = 1 << (n + pad - 1).bit_length()  # a power of two: clip lengths are arbitrary and FFTs of primes crawl
    f = np.fft.rfftfreq(size, 1.0 / SR)
    return np.fft.irfft(np.fft.rfft(x, size) * gain(f), size)[:n]


def _band(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Zero-phase 2nd-order Butterworth-like band-pass of x [n] (fine for noise: it has no onsets to smear)."""
    def gain(f: np.ndarray) -> np.ndarray:
        f = np.maximum(f, 1e-3)
        return 1.0 / np.sqrt((1 + (lo / f) ** 4) * (1 + (f / hi) ** 4))
    return _spectrum_filter(x, gain)


def _resonate(x: np.ndarray, formants: list[tuple[float, float]]) -> np.ndarray:
    """x [n] through causal two-pole resonators (centre Hz, bandwidth Hz) in cascade, each peaking at 1."""
    def gain(f: np.ndarray) -> np.ndarray:
        z1 = np.exp(-2j * np.pi * f / SR)
        h = np.ones_like(z1)
        for centre, bw in formants:
            r, theta = np.exp(-np.pi * bw / SR), 2 * np.pi * centre / SR
            hk = 1.0 / (1 - 2 * r * np.cos(theta) * z1 + r * r * z1 * z1)
            h = h * hk / np.abs(hk).max()
        return h
    return _spectrum_filter(x, gain, pad=2048)


def _convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Linear convolution of x [n] with kernel [k], cut to [n]."""
    size = 1 << (len(x) + len(kernel) - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(kernel, size), size)[:len(x)]


def _osc(freq: np.ndarray, amps: np.ndarray) -> np.ndarray:
    """Harmonic tone [n] following the instantaneous frequency freq [n]; harmonics near Nyquist are dropped."""
    phase = 2 * np.pi * np.cumsum(freq) / SR
    out = np.zeros(len(freq))
    for h, a in enumerate(amps, start=1):
        out += a * np.sin(h * phase) * (h * freq < 0.48 * SR)
    return out


def _saw(freq: np.ndarray) -> np.ndarray:
    """Sawtooth [n] (a crude glottal pulse train: every harmonic, falling as 1/h) at freq [n]."""
    return 2 * (np.cumsum(freq) / SR % 1.0) - 1


def _env(m: int, attack_s: float, release_s: float) -> np.ndarray:
    """Envelope [m]: linear attack, flat, linear release (so notes and bursts do not click)."""
    k = np.arange(m)
    return np.clip(np.minimum(k / max(1.0, attack_s * SR), (m - k) / max(1.0, release_s * SR)), 0, 1)


def _decay(m: int, tau_s: float, attack_s: float = 0.002) -> np.ndarray:
    """Envelope [m]: fast attack then exponential decay with time constant tau_s."""
    k = np.arange(m) / SR
    return (1 - np.exp(-k / attack_s)) * np.exp(-k / tau_s)


def _wander(rng: np.random.Generator, m: int, rate_hz: float) -> np.ndarray:
    """Slow random fluctuation [m] in about [-1, 1]: random knots rate_hz apart, linearly interpolated."""
    knots = max(2, int(m / SR * rate_hz) + 2)
    return np.interp(np.arange(m), np.linspace(0, m, knots), rng.uniform(-1, 1, knots))


def _add(out: np.ndarray, x: np.ndarray, at: int) -> None:
    """Add x into out from sample `at`, dropping what runs past the end."""
    if 0 <= at < len(out):
        out[at:at + len(x)] += x[:len(out) - at]


# ---- one generator per class: (rng, n) -> foreground [n], any level (render_clip normalizes) ----

def _air_conditioner(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    noise = _band(rng.standard_normal(n), rng.uniform(30, 200), rng.uniform(500, 4000))
    f0 = rng.uniform(40, 130) * (1 + 0.004 * _wander(rng, n, 0.5))
    hum = _osc(f0, rng.uniform(0.1, 1, 8) / np.arange(1, 9))
    blade = 1 + rng.uniform(0.05, 0.35) * np.sin(2 * np.pi * rng.uniform(2, 15) * t + rng.uniform(0, 6.3))
    mix = noise / noise.std() * rng.uniform(0.5, 1.5) + hum / hum.std() * rng.uniform(0.2, 1.0)
    return mix * blade


def _car_horn(rng: np.random.Generator, n: int) -> np.ndarray:
    f1 = rng.uniform(300, 500)
    tones = [f1] if rng.random() < 0.4 else [f1, f1 * rng.uniform(1.15, 1.35)]  # many cars have a two-tone pair
    amps = 1 / np.arange(1, 13) ** rng.uniform(0.6, 1.5)
    out, at = np.zeros(n), int(rng.uniform(0, 0.4) * n)
    for _ in range(rng.integers(1, 5)):
        m = int(rng.uniform(0.15, 1.5) * SR)
        vib = 1 + 0.004 * _wander(rng, m, 8)
        honk = sum(_osc(fk * vib, amps) for fk in tones)
        _add(out, honk * _env(m, 0.01, 0.04), at)
        at += m + int(rng.uniform(0.05, 0.5) * SR)
    return out


def _syllable(rng: np.random.Generator, m: int, f0: float) -> np.ndarray:
    """One voiced syllable [m]: a gliding sawtooth plus breath through three random formants."""
    glide = f0 * np.linspace(1, rng.uniform(0.75, 1.3), m) * (1 + 0.02 * _wander(rng, m, 20))
    src = _saw(glide) + rng.uniform(0.02, 0.2) * rng.standard_normal(m)
    formants = [(rng.uniform(300, 1000), 90), (rng.uniform(900, 2800), 130), (rng.uniform(2600, 3800), 220)]
    return _resonate(src, formants) * _env(m, 0.02, 0.06)


def _children_playing(rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.zeros(n)
    for _ in range(rng.integers(2, 6)):  # overlapping voices, each a babble of syllables and pauses
        base, level, at = rng.uniform(250, 450), rng.uniform(0.3, 1), int(rng.uniform(0, 0.5) * SR)
        while at < n:
            m = int(rng.uniform(0.08, 0.35) * SR)
            _add(out, level * _syllable(rng, m, base * rng.uniform(0.8, 1.25)), at)
            at += m + int(rng.exponential(0.1 if rng.random() < 0.8 else 0.6) * SR)
    for _ in range(rng.integers(0, 3)):  # shouts: long, high and loud
        m = int(rng.uniform(0.3, 0.9) * SR)
        _add(out, rng.uniform(1.5, 3) * _syllable(rng, m, rng.uniform(450, 750)), int(rng.uniform(0, n)))
    return out


def _dog_bark(rng: np.random.Generator, n: int) -> np.ndarray:
    size = rng.uniform(0.6, 1.6)  # bigger dogs bark lower, with lower formants
    formants = [(rng.uniform(500, 1100) / size, 150), (rng.uniform(1200, 2500) / size, 250)]
    out, at = np.zeros(n), int(rng.uniform(0, 0.4) * n)
    for _ in range(rng.integers(1, 7)):
        m = int(rng.uniform(0.08, 0.3) * SR)
        f0 = rng.uniform(350, 900) / size * np.linspace(1, rng.uniform(0.55, 0.8), m)  # barks drop in pitch
        src = rng.uniform(0.4, 1) * _saw(f0) + rng.uniform(0.2, 0.8) * rng.standard_normal(m)
        _add(out, _resonate(src, formants) * _decay(m, rng.uniform(0.03, 0.1), 0.005), at)
        at += m + int(rng.uniform(0.1, 0.6) * SR)
    return out


def _drilling(rng: np.random.Generator, n: int) -> np.ndarray:
    f_run = rng.uniform(150, 500)
    whine_h = rng.uniform(3, 10)  # the harmonic where the gears whine loudest
    h = np.arange(1, 21)
    amps = np.exp(-((h - whine_h) / rng.uniform(1, 3)) ** 2) + 0.3 / h
    out, at = np.zeros(n), int(rng.uniform(0, 0.3) * n)
    for _ in range(rng.integers(1, 4)):  # trigger pulled, released, pulled again
        m = int(rng.uniform(0.4, 3.5) * SR)
        spin = 1 - np.exp(-np.arange(m) / (rng.uniform(0.05, 0.3) * SR))
        freq = f_run * rng.uniform(0.8, 1.2) * spin * (1 + 0.03 * _wander(rng, m, 4))
        grind = _band(rng.standard_normal(m), 2000, 7000) * rng.uniform(0.05, 0.3)
        _add(out, (_osc(freq, amps) + grind) * spin * _env(m, 0.02, 0.1), at)
        at += m + int(rng.uniform(0.1, 0.8) * SR)
    return out


def _engine_idling(rng: np.random.Generator, n: int) -> np.ndarray:
    cylinders = int(rng.choice([4, 6, 8]))
    fire_hz = rng.uniform(600, 1100) / 60 * cylinders / 2  # a four-stroke fires every other turn per cylinder
    pattern = rng.uniform(0.6, 1.0, cylinders)  # uneven cylinders give the idle its lope
    period = SR / fire_hz * (1 + 0.01 * rng.standard_normal(int(n / SR * fire_hz) + 2))
    times = np.cumsum(period).astype(int)
    pulses = np.zeros(n)
    keep = times < n
    pulses[times[keep]] = np.resize(pattern, len(times))[keep] * rng.uniform(0.8, 1.2, keep.sum())
    m = int(0.06 * SR)
    k = np.arange(m) / SR
    thump = np.sin(2 * np.pi * rng.uniform(60, 250) * k) + 0.5 * _band(rng.standard_normal(m), 50, 1500)
    kernel = thump * _decay(m, rng.uniform(0.008, 0.025))
    rumble = _band(rng.standard_normal(n), 20, 400)
    x = _band(_convolve(pulses, kernel), 20, rng.uniform(400, 1500))  # the exhaust muffles the highs
    return x / (x.std() + 1e-12) + rng.uniform(0.1, 0.5) * rumble / rumble.std()


def _gun_shot(rng: np.random.Generator, n: int) -> np.ndarray:
    m = int(0.4 * SR)
    crack = _band(rng.standard_normal(m), rng.uniform(200, 1000), rng.uniform(2500, 7500))
    boom = np.sin(2 * np.pi * rng.uniform(50, 150) * np.arange(m) / SR) * rng.uniform(0.3, 1.5)
    shot = crack * _decay(m, rng.uniform(0.005, 0.03), 0.0005) + boom * _decay(m, rng.uniform(0.03, 0.08))
    tail = _band(rng.standard_normal(m), 200, 4000) * _decay(m, rng.uniform(0.05, 0.15), 0.01) * 0.2
    echoes = [(int(rng.uniform(0.05, 0.4) * SR), rng.uniform(0.1, 0.4)) for _ in range(rng.integers(0, 3))]
    out, at = np.zeros(n), int(rng.uniform(0, 0.5) * n)
    gap = rng.uniform(0.08, 0.15) if rng.random() < 0.3 else rng.uniform(0.3, 0.8)  # automatic or single fire
    for _ in range(int(rng.choice([1, 1, 1, 2, 3, 4]))):
        for delay, gain in [(0, 1.0)] + echoes:
            _add(out, gain * (shot + tail), at + delay)
        at += int(gap * SR * rng.uniform(0.9, 1.1))
    return out


def _jackhammer(rng: np.random.Generator, n: int) -> np.ndarray:
    rate = rng.uniform(10, 25)
    centre = rng.uniform(600, 3500)
    m = int(0.04 * SR)
    ring = np.sin(2 * np.pi * rng.uniform(1000, 4000) * np.arange(m) / SR) * rng.uniform(0.1, 0.5)
    kernel = (_band(rng.standard_normal(m), centre / 2, centre * 2) + ring) * _decay(m, rng.uniform(0.003, 0.015))
    pulses, at = np.zeros(n), int(rng.uniform(0, 0.3) * n)
    for _ in range(rng.integers(1, 4)):  # bursts of hammering with pauses between
        stop = at + int(rng.uniform(0.5, 3.5) * SR)
        while at < min(stop, n):
            pulses[at] = rng.uniform(0.7, 1.0)
            at += int(SR / rate * rng.uniform(0.97, 1.03))
        at += int(rng.uniform(0.2, 0.8) * SR)
    hiss = _band(rng.standard_normal(n), 2000, 6000) * rng.uniform(0.0, 0.05)
    return _convolve(pulses, kernel) + hiss * (_convolve(pulses, np.ones(int(SR / rate))) > 0.5)


def _siren(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    lo = rng.uniform(500, 900)
    hi = lo * rng.uniform(1.4, 2.2)
    mode = rng.choice(["wail", "yelp", "hilo"])
    phase = rng.uniform(0, 1)
    if mode == "wail":  # slow smooth rise and fall
        shape = 0.5 - 0.5 * np.cos(2 * np.pi * (rng.uniform(0.15, 0.5) * t + phase))
    elif mode == "yelp":  # fast sweeps, rising slower than falling
        shape = np.minimum(1.0, 1.25 * ((rng.uniform(2.5, 6) * t + phase) % 1.0))
    else:  # two tones alternating
        shape = ((rng.uniform(0.8, 2.5) * t + phase) % 1.0 < 0.5).astype(float)
    doppler = 1 + rng.uniform(-0.04, 0.04) * np.linspace(-1, 1, n)
    amps = 1 / np.arange(1, 7) ** rng.uniform(0.8, 2.0)
    return _osc((lo + (hi - lo) * shape) * doppler, amps) * np.linspace(rng.uniform(0.5, 1), rng.uniform(0.5, 1), n)


def _drum(rng: np.random.Generator, kind: str) -> np.ndarray:
    """One drum hit: a kick (a falling low sine) or a snare/hat (a noise burst)."""
    m = int(0.2 * SR)
    if kind == "kick":
        freq = rng.uniform(50, 80) * (1 + 2 * np.exp(-np.arange(m) / (0.02 * SR)))
        return np.sin(2 * np.pi * np.cumsum(freq) / SR) * _decay(m, 0.06)
    lo = 1000 if kind == "snare" else 5000
    return _band(rng.standard_normal(m), lo, 7500) * _decay(m, 0.05 if kind == "snare" else 0.015) * 0.5


def _street_music(rng: np.random.Generator, n: int) -> np.ndarray:
    beat = int(60 / rng.uniform(80, 160) * SR)
    steps = rng.choice([[0, 2, 4, 7, 9], [0, 3, 5, 7, 10]])  # major or minor pentatonic
    scale = rng.uniform(150, 400) * 2 ** ((np.concatenate([steps, steps + 12])) / 12)
    amps = 1 / np.arange(1, 11) ** rng.uniform(0.8, 2.5)
    tau = rng.uniform(0.15, 1.0)  # plucked (short) to bowed/blown (long)
    out, at, note = np.zeros(n), 0, int(rng.integers(0, len(scale)))
    while at < n:
        m = beat * int(rng.choice([1, 1, 2])) // int(rng.choice([1, 2]))
        note = int(np.clip(note + rng.integers(-2, 3), 0, len(scale) - 1))
        _add(out, _osc(np.full(m, scale[note]), amps) * _decay(m, tau, 0.01) * _env(m, 0, 0.02), at)
        at += m
    level = rng.uniform(1, 4) * np.sqrt(np.mean(out ** 2)) * (rng.random() < 0.8)  # a few buskers play no drums
    kicks, snares = rng.random(4) < 0.6, rng.random(4) < 0.5
    for i, at in enumerate(range(0, n, beat // 2)):  # eighth notes: hats between beats, a random bar pattern on them
        b = (i // 2) % 4
        kind = "hat" if i % 2 else "kick" if kicks[b] or b == 0 else "snare" if snares[b] else "hat"
        _add(out, level * _drum(rng, kind), at)
    return out


GENERATORS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "air_conditioner": _air_conditioner, "car_horn": _car_horn, "children_playing": _children_playing,
    "dog_bark": _dog_bark, "drilling": _drilling, "engine_idling": _engine_idling, "gun_shot": _gun_shot,
    "jackhammer": _jackhammer, "siren": _siren, "street_music": _street_music,
}
