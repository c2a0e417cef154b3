"""Fused phone paths: identical to the separate decode/resample/encode steps, base64 inside C included."""
import base64

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from gateway import audio

PCM = (np.random.default_rng(11).standard_normal(48000) * 5000).clip(-32768, 32767).astype("<i2").tobytes()
DECODE = {"ulaw": audio.ulaw_decode, "alaw": audio.alaw_decode, "l16": lambda b: bytes(b)}
ENCODE = {"ulaw": audio.ulaw_encode, "alaw": audio.alaw_encode, "l16": lambda b: bytes(b)}


def frames(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("low_delay", [False, True])
@pytest.mark.parametrize("codec", ["ulaw", "alaw", "l16"])
@pytest.mark.parametrize("rate,out_rate", [(8000, 16000), (16000, 16000), (8000, 24000), (16000, 48000)])
def test_inbound_equals_decode_then_resample(codec, rate, out_rate, low_delay):
    payload = ENCODE[codec](PCM[:2 * rate])                 # 1 s of provider audio
    t = audio.Transcoder.inbound(codec, rate, out_rate, low_delay=low_delay)
    r = audio.Resampler(rate, out_rate, low_delay=low_delay)
    size = rate // 50 * (2 if codec == "l16" else 1)
    for f in frames(payload, size):
        assert t.process(f) == r.process(DECODE[codec](f))
    assert t.flush() == r.flush()
    assert t.delay_ms == r.delay_ms


@pytest.mark.parametrize("codec", ["ulaw", "alaw", "l16"])
@pytest.mark.parametrize("in_rate,rate", [(24000, 8000), (24000, 16000), (16000, 8000), (48000, 8000)])
def test_outbound_equals_resample_then_encode(codec, in_rate, rate):
    t = audio.Transcoder.outbound(codec, rate, in_rate)
    r = audio.Resampler(in_rate, rate)
    for f in frames(PCM[:2 * in_rate], in_rate // 50 * 2):
        assert t.process(f) == ENCODE[codec](r.process(f))
    assert t.flush() == ENCODE[codec](r.flush())


@pytest.mark.parametrize("codec", ["ulaw", "l16"])
def test_base64_in_matches_python_base64(codec):
    payload = ENCODE[codec](PCM[:16000])
    raw, b64 = audio.Transcoder.inbound(codec), audio.Transcoder.inbound(codec)
    for f in frames(payload, 160 * (2 if codec == "l16" else 1)):
        text = base64.b64encode(f).decode()
        assert b64.process_b64(text) == raw.process(f)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(sizes=st.lists(st.integers(0, 700), min_size=1, max_size=12), codec=st.sampled_from(["ulaw", "alaw", "l16"]))
def test_base64_out_matches_python_base64_for_any_frame_size(sizes, codec):
    b64, raw = audio.Transcoder.outbound(codec), audio.Transcoder.outbound(codec)
    pos = 0
    for size in sizes:
        f = PCM[2 * pos:2 * (pos + size)]
        pos += size
        assert b64.process_to_b64(f) == base64.b64encode(raw.process(f)).decode()


@settings(max_examples=200, derandomize=True, deadline=None)
@given(data=st.binary(max_size=3000), unpadded=st.booleans())
def test_base64_in_decodes_like_python_including_unpadded(data, unpadded):
    text = base64.b64encode(data).decode()
    if unpadded:
        text = text.rstrip("=")
    assert audio.Transcoder("ulaw", 8000, "l16", 8000).process_b64(text) == audio.ulaw_decode(data)


@pytest.mark.parametrize("bad", ["@@@@", "A", "AAAAA", "AA=A", "AAAA=", "A===", "AAAA AAAA", "é", "AB\nCD"])
def test_invalid_base64_is_a_value_error_and_leaves_the_stream_untouched(bad):
    t, fresh = audio.Transcoder.inbound("ulaw"), audio.Transcoder.inbound("ulaw")
    frame = audio.ulaw_encode(PCM[:320])
    t.process(frame)
    fresh.process(frame)
    with pytest.raises(ValueError, match="base64"):
        t.process_b64(bad)
    assert t.process(frame) == fresh.process(frame)


def test_odd_pcm16_is_rejected_before_any_work():
    t = audio.Transcoder.inbound("l16")
    with pytest.raises(ValueError, match="even number of bytes"):
        t.process(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="odd number of bytes"):
        t.process_b64(base64.b64encode(b"\x00\x01\x02").decode())
    with pytest.raises(ValueError, match="even number of bytes"):
        audio.Transcoder.outbound("ulaw").process_to_b64(b"\x00")


def test_constructor_errors_name_the_problem():
    with pytest.raises(ValueError, match="in_codec='opus' is not supported"):
        audio.Transcoder("opus", 8000, "l16", 16000)
    with pytest.raises(ValueError, match="rate=11025 is not supported"):
        audio.Transcoder.inbound("ulaw", 11025)
    with pytest.raises(TypeError, match="out_codec must be a str"):
        audio.Transcoder("ulaw", 8000, 1, 16000)
    with pytest.raises(TypeError, match="payload: expected str or bytes"):
        audio.Transcoder.inbound().process_b64(bytearray(b"AAAA"))


def test_large_frames_grow_the_buffer():
    t = audio.Transcoder.inbound("ulaw", 8000, 48000)
    r = audio.Resampler(8000, 48000)
    big = audio.ulaw_encode(PCM)                            # 6 s at 8 kHz in one call
    assert t.process(big) == r.process(audio.ulaw_decode(big))
    assert audio.Transcoder.outbound("l16", 48000, 8000).process_to_b64(PCM)


def test_context_manager_closes():
    with audio.Transcoder.outbound() as t:
        t.process(PCM[:960])
    with pytest.raises(ValueError, match="closed"):
        t.process(PCM[:960])
