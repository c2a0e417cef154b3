"""Deterministic quality and latency measurements for any streaming int16 resampler.

A resampler here is a factory ``make() -> feed`` where ``feed(int16 ndarray) -> int16 ndarray`` keeps
state across calls (ours, soxr.ResampleStream, samplerate.Resampler all fit). Every measurement streams
20 ms frames, as a phone call does, and analyses a 1 s window in steady state. Tones are at -6 dBFS.
Shared by tests/test_resampler.py (floors asserted, they are deterministic) and benchmarks/audio_core.py.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

Feed = Callable[[np.ndarray], np.ndarray]
Factory = Callable[[], Feed]

AMP = 0.5 * 32767            # -6 dBFS
FRAME_S = 0.020
SETTLE_S = 0.25              # skip the start (filter ramp-in, soxr's burst)
WINDOW_S = 1.0


def tone(freq: float, rate: int, seconds: float, amp: float = AMP) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return np.round(amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def stream(make: Factory, x: np.ndarray, in_rate: int) -> tuple[np.ndarray, list[int]]:
    """Feed x in 20 ms frames; the output and the cumulative output count after each frame."""
    feed = make()
    step = int(round(in_rate * FRAME_S))
    outs, counts, total = [], [], 0
    for i in range(0, len(x), step):
        y = np.asarray(feed(x[i:i + step]), dtype=np.int16).reshape(-1)
        outs.append(y)
        total += len(y)
        counts.append(total)
    return (np.concatenate(outs) if outs else np.zeros(0, np.int16)), counts


def _window(y: np.ndarray, rate: int) -> np.ndarray:
    a = int(SETTLE_S * rate)
    seg = y[a:a + int(WINDOW_S * rate)].astype(np.float64)
    if len(seg) < int(0.5 * rate):
        raise ValueError("output too short to analyse")
    return seg


def _fit(seg: np.ndarray, freqs: list[float], rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit of DC + sinusoids at freqs; (amplitude per freq, residual)."""
    t = np.arange(len(seg)) / rate
    cols = [np.ones_like(t)]
    for f in freqs:
        cols += [np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)]
    a = np.stack(cols, axis=1)
    c, *_ = np.linalg.lstsq(a, seg, rcond=None)
    amps = np.hypot(c[1::2], c[2::2])
    return amps, seg - a @ c


def _run_tone(make: Factory, in_rate: int, out_rate: int, freq: float) -> np.ndarray:
    y, _ = stream(make, tone(freq, in_rate, SETTLE_S + WINDOW_S + 0.1), in_rate)
    return _window(y, out_rate)


def snr_thdn(make: Factory, in_rate: int, out_rate: int, freq: float = 997.0) -> tuple[float, float]:
    """(SNR dB excluding harmonics 2..5, THD+N dB below the tone) for a -6 dBFS tone."""
    seg = _run_tone(make, in_rate, out_rate, freq)
    ny = out_rate / 2
    harmonics = [k * freq for k in range(2, 6) if k * freq < ny]
    amps, res_h = _fit(seg, [freq] + harmonics, out_rate)
    amp1, res_all = _fit(seg, [freq], out_rate)
    p_sig = amps[0] ** 2 / 2
    snr = 10 * math.log10(p_sig / max(np.mean(res_h ** 2), 1e-30))
    thdn = 10 * math.log10(amp1[0] ** 2 / 2 / max(np.mean(res_all ** 2), 1e-30))
    return snr, thdn


def gain_db(make: Factory, in_rate: int, out_rate: int, freq: float) -> float:
    seg = _run_tone(make, in_rate, out_rate, freq)
    amps, _ = _fit(seg, [freq], out_rate)
    return 20 * math.log10(max(amps[0], 1e-9) / AMP)


def ripple_db(make: Factory, in_rate: int, out_rate: int, edge: float = 0.875, points: int = 16) -> float:
    """Peak-to-peak gain (dB) over 100 Hz .. edge x the lower Nyquist."""
    ny = min(in_rate, out_rate) / 2
    g = [gain_db(make, in_rate, out_rate, f) for f in np.linspace(100.0, edge * ny, points)]
    return max(g) - min(g)


def minus3db_point(make: Factory, in_rate: int, out_rate: int, steps: int = 9) -> float:
    """Frequency (as a fraction of the lower Nyquist) where the gain crosses -3 dB, by bisection."""
    ny = min(in_rate, out_rate) / 2
    lo, hi = 0.80, 0.999
    if gain_db(make, in_rate, out_rate, hi * ny) > -3.0:
        return hi
    if gain_db(make, in_rate, out_rate, lo * ny) < -3.0:
        return lo
    for _ in range(steps):
        mid = (lo + hi) / 2
        if gain_db(make, in_rate, out_rate, mid * ny) > -3.0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def rejection_db(make: Factory, in_rate: int, out_rate: int, start: float = 1.05, points: int = 10) -> float:
    """Worst image/alias level (dB below a -6 dBFS tone) for content at >= start x the lower Nyquist.

    Upsampling: tones up to (2 - start) x the input Nyquist, whose images sit at >= start x it; the
    level is everything in the output except the tone. Downsampling: tones from start x the output
    Nyquist up to 0.95 x the input Nyquist, which should vanish; the level is all the output.
    Both include the int16 noise floor (~ -92 dB here), so ~90 dB is the ceiling."""
    worst = math.inf
    if out_rate > in_rate:
        ny = in_rate / 2
        for f in np.linspace(0.05 * ny, (2 - start) * ny, points):
            seg = _run_tone(make, in_rate, out_rate, f)
            _, res = _fit(seg, [f], out_rate)
            worst = min(worst, 10 * math.log10(AMP ** 2 / 2 / max(np.mean(res ** 2), 1e-30)))
    else:
        for f in np.linspace(start * out_rate / 2, 0.95 * in_rate / 2, points):
            seg = _run_tone(make, in_rate, out_rate, f)
            seg = seg - seg.mean()
            worst = min(worst, 10 * math.log10(AMP ** 2 / 2 / max(np.mean(seg ** 2), 1e-30)))
    return worst


def _bandlimited_noise(rate: int, seconds: float, cutoff_hz: float, seed: int = 7) -> np.ndarray:
    n = int(rate * seconds)
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spec[np.fft.rfftfreq(n, 1 / rate) > cutoff_hz] = 0
    x = np.fft.irfft(spec, n)
    return x / np.max(np.abs(x)) * AMP


def _ideal_resample(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    n_out = len(x) * out_rate // in_rate
    spec = np.fft.rfft(x)
    out = np.zeros(n_out // 2 + 1, dtype=complex)
    k = min(len(spec), len(out))
    out[:k] = spec[:k]
    return np.fft.irfft(out, n_out) * (n_out / len(x))


def group_delay_s(make: Factory, in_rate: int, out_rate: int) -> float:
    """Delay of the output stream against the input (cross-correlation with an ideal band-limited
    resampling of band-limited noise, parabolic peak interpolation)."""
    low = min(in_rate, out_rate)
    xf = _bandlimited_noise(in_rate, 1.0, 0.7 * low / 2)
    x = np.round(xf).astype(np.int16)
    y, _ = stream(make, x, in_rate)
    ref = _ideal_resample(xf, in_rate, out_rate)
    n = min(len(y), len(ref))
    a = int(0.2 * out_rate)
    max_lag = int(0.15 * out_rate)
    seg = ref[a:n - max_lag]
    tail = y[a:n].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(tail) + len(seg))))
    full = np.fft.irfft(np.fft.rfft(tail, size) * np.conj(np.fft.rfft(seg, size)), size)
    corr = full[:max_lag]                  # corr[lag] = sum seg[i] * y[a + lag + i]
    k = int(np.argmax(corr))
    if 0 < k < len(corr) - 1:
        c0, c1, c2 = corr[k - 1], corr[k], corr[k + 1]
        k = k + 0.5 * (c0 - c2) / (c0 - 2 * c1 + c2)
    return k / out_rate


def latency(make: Factory, in_rate: int, out_rate: int, seconds: float = 1.0) -> dict:
    """Fed 20 ms frames: first-output delay, held-back samples (mean/max, output rate) and the added
    latency = held back + group delay (ms), mean and max over frames."""
    x = tone(440.0, in_rate, seconds)
    _, counts = stream(make, x, in_rate)
    step = int(round(in_rate * FRAME_S))
    fed = [min((i + 1) * step, len(x)) for i in range(len(counts))]
    held = [f * out_rate / in_rate - c for f, c in zip(fed, counts)]
    first = next((f for f, c in zip(fed, counts) if c > 0), None)
    gd = group_delay_s(make, in_rate, out_rate)
    added = [h / out_rate + gd for h in held]
    return {
        "first_output_ms": None if first is None else 1000 * first / in_rate,
        "held_back_mean": float(np.mean(held)),
        "held_back_max": float(np.max(held)),
        "group_delay_ms": 1000 * gd,
        "added_latency_mean_ms": 1000 * float(np.mean(added)),
        "added_latency_max_ms": 1000 * float(np.max(added)),
    }


def quality(make: Factory, in_rate: int, out_rate: int) -> dict:
    snr, thdn = snr_thdn(make, in_rate, out_rate)
    return {
        "snr_db": snr,
        "thdn_db": thdn,
        "ripple_db": ripple_db(make, in_rate, out_rate),
        "minus3db_x_nyquist": minus3db_point(make, in_rate, out_rate),
        "rejection_db": rejection_db(make, in_rate, out_rate),
    }
