"""Streaming resampler through gateway.audio: chunking invariance, flush/reset, latency, quality floors.

The quality figures are deterministic (fixed tones, fixed filter), so floors are asserted; speed is only
measured by benchmarks/audio_core.py."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from benchmarks import _signal
from gateway import audio

RATES = audio.RATES
PAIRS = [(a, b) for a in RATES for b in RATES]
REQUIRED = [(8000, 16000), (16000, 24000), (24000, 8000), (24000, 16000), (48000, 16000)]
NOISE = (np.random.default_rng(5).standard_normal(9000) * 6000).clip(-32768, 32767).astype("<i2").tobytes()


def ours(in_rate, out_rate, low_delay=False):
    def make():
        r = audio.Resampler(in_rate, out_rate, low_delay=low_delay)
        return lambda x: np.frombuffer(r.process(x.tobytes()), np.int16)
    return make


def whole(in_rate, out_rate, data=NOISE, low_delay=False):
    r = audio.Resampler(in_rate, out_rate, low_delay=low_delay)
    return r.process(data) + r.flush()


@settings(max_examples=150, derandomize=True, deadline=None)
@given(pair=st.sampled_from(PAIRS), low_delay=st.booleans(),
       sizes=st.lists(st.one_of(st.integers(0, 8), st.sampled_from([160, 320, 480, 960]),
                                st.integers(0, 3000)), min_size=1, max_size=40))
def test_output_does_not_depend_on_chunking(pair, low_delay, sizes):
    r = audio.Resampler(*pair, low_delay=low_delay)
    out, pos, n = [], 0, len(NOISE) // 2
    for size in sizes * (1 + n // max(1, sum(sizes))):
        if pos >= n:
            break
        out.append(r.process(NOISE[2 * pos:2 * min(n, pos + size)]))
        pos += size
    out.append(r.process(NOISE[2 * pos:]) if pos < n else b"")
    assert b"".join(out) + r.flush() == whole(*pair, low_delay=low_delay)


@pytest.mark.parametrize("pair", PAIRS)
def test_one_sample_at_a_time_equals_whole(pair):
    r = audio.Resampler(*pair)
    data = NOISE[:2 * 700]
    pieces = [r.process(data[i:i + 2]) for i in range(0, len(data), 2)]
    assert b"".join(pieces) + r.flush() == whole(*pair, data)


@pytest.mark.parametrize("pair", PAIRS)
def test_20ms_in_gives_20ms_out_from_the_first_frame(pair):
    in_rate, out_rate = pair
    r = audio.Resampler(in_rate, out_rate)
    frame = NOISE[:2 * in_rate // 50]
    assert [len(r.process(frame)) // 2 for _ in range(10)] == [out_rate // 50] * 10


@pytest.mark.parametrize("pair", PAIRS)
def test_flush_emits_the_tail_and_starts_a_new_stream(pair):
    in_rate, out_rate = pair
    r = audio.Resampler(in_rate, out_rate)
    body = r.process(NOISE)
    tail = r.flush()
    n_in = len(NOISE) // 2
    delay_out = r.delay_ms * out_rate / 1000
    # everything up to the last input sample, shifted by the group delay, comes out
    assert (len(body) + len(tail)) // 2 == math.ceil(n_in * out_rate / in_rate + delay_out - 1e-9)
    assert r.flush() == b""
    assert r.process(NOISE) + r.flush() == body + tail           # flush left a fresh stream


@pytest.mark.parametrize("pair", PAIRS)
def test_reset_drops_history(pair):
    r = audio.Resampler(*pair)
    r.process(NOISE[:3000])
    r.reset()
    assert r.process(NOISE) + r.flush() == whole(*pair)


def test_empty_stream_flushes_nothing():
    r = audio.Resampler(8000, 16000)
    assert r.process(b"") == b""
    assert r.flush() == b""


@pytest.mark.parametrize("pair", PAIRS)
def test_reported_delay_is_within_budget_and_matches_measurement(pair):
    in_rate, out_rate = pair
    r = audio.Resampler(in_rate, out_rate)
    budget = 0.0 if in_rate == out_rate else (4.0 if min(pair) == 8000 else 2.0)
    assert r.delay_ms <= budget
    measured = 1000 * _signal.group_delay_s(ours(in_rate, out_rate), in_rate, out_rate)
    assert measured == pytest.approx(r.delay_ms, abs=0.05)


@pytest.mark.parametrize("pair", REQUIRED)
def test_added_latency_fed_20ms_frames(pair):
    lat = _signal.latency(ours(*pair), *pair, seconds=0.5)
    assert lat["first_output_ms"] == 20.0
    assert lat["held_back_max"] < 1.0
    assert lat["added_latency_max_ms"] <= (4.0 if min(pair) == 8000 else 2.0) + 0.05


@pytest.mark.parametrize("pair", REQUIRED)
def test_low_delay_mode_cuts_the_measured_delay(pair):
    linear = audio.Resampler(*pair).delay_ms
    r = audio.Resampler(*pair, low_delay=True)
    measured = 1000 * _signal.group_delay_s(ours(*pair, low_delay=True), *pair)
    assert 0 < r.delay_ms < linear / 5
    assert measured < linear / 4
    assert measured == pytest.approx(r.delay_ms, abs=0.3)
    lat = _signal.latency(ours(*pair, low_delay=True), *pair, seconds=0.5)
    assert lat["held_back_max"] < 1.0 and lat["added_latency_max_ms"] < linear / 4


@pytest.mark.parametrize("low_delay", [False, True], ids=["linear", "low_delay"])
@pytest.mark.parametrize("pair", REQUIRED)
def test_quality_floors(pair, low_delay):
    q = _signal.quality(ours(*pair, low_delay=low_delay), *pair)
    assert q["snr_db"] >= 86.0
    assert q["ripple_db"] <= 0.05
    assert q["minus3db_x_nyquist"] >= 0.92
    assert q["rejection_db"] >= 80.0


def test_full_scale_square_wave_saturates_instead_of_wrapping():
    square = np.tile(np.r_[np.full(20, 32767), np.full(20, -32768)], 100).astype("<i2")
    for pair in REQUIRED:
        y = np.frombuffer(whole(*pair, square.tobytes()), "<i2").astype(int)
        # Gibbs overshoot clips at the rails; a wrapped sample would flip sign next to a rail
        jumps = np.abs(np.diff(y))
        assert jumps.max() < 65535 or (y.max() == 32767 and y.min() == -32768)
        assert not np.any((y[:-1] == 32767) & (y[1:] < -20000))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="in_rate=44100 is not supported"):
        audio.Resampler(44100, 16000)
    with pytest.raises(TypeError, match="out_rate must be an int"):
        audio.Resampler(8000, "16000")
    with pytest.raises(TypeError, match="out_rate must be an int"):
        audio.Resampler(8000, 16000.0)
    r = audio.Resampler(8000, 16000)
    with pytest.raises(ValueError, match="even number of bytes"):
        r.process(b"\x00\x01\x02")
    with pytest.raises(TypeError, match="expected bytes"):
        r.process([0, 1])
    with pytest.raises(TypeError, match="low_delay must be a bool"):
        audio.Resampler(8000, 16000, low_delay=1)


def test_accepts_bytearray_and_memoryview():
    frame = NOISE[:320]
    expected = audio.Resampler(8000, 16000).process(frame)
    assert audio.Resampler(8000, 16000).process(bytearray(frame)) == expected
    assert audio.Resampler(8000, 16000).process(memoryview(frame)) == expected
    assert audio.Resampler(8000, 16000).process(memoryview(b"\0" + frame)[1:]) == expected


def test_close_frees_now_and_later_use_is_an_error():
    with audio.Resampler(16000, 24000) as r:
        r.process(NOISE[:640])
    with pytest.raises(ValueError, match="closed"):
        r.process(NOISE[:640])
    r.close()                                                    # idempotent


def test_large_input_in_one_call():
    data = NOISE * 40                                            # 360,000 samples, > the preallocated buffer
    r = audio.Resampler(8000, 48000)
    assert len(r.process(data)) // 2 == len(data) // 2 * 6
