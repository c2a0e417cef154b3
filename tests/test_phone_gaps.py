"""GapFiller (the phone leg's inbound timeline keeper) as properties: whatever the provider's
frame numbering does, it never raises, hands out whole 20 ms frames, and for in-order audio with
losses the agent receives exactly as many frames as the call lasted (concealment fills gaps)."""
from __future__ import annotations

import base64

from hypothesis import given, settings, strategies as st

from gateway.audio import Transcoder
from gateway.legs.phone import UP_FRAME_BYTES, GapFiller
from gateway.metrics import SessionStats
from gateway.protocols import MediaReceived

FRAME = bytes(range(256)) * 2 + bytes(128)       # 640 bytes of "speech"


def _filler(stats: SessionStats) -> GapFiller:
    # PCM16 16 kHz in and out: the filler sees exactly the bytes a test sends
    return GapFiller(stats, Transcoder("l16", 16000, "l16", 16000))


def _media(ts_ms: int | None, pcm: bytes = FRAME, chunk: int | None = None) -> MediaReceived:
    return MediaReceived(base64.b64encode(pcm).decode(), None, chunk, ts_ms)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=60),
       st.integers(min_value=0, max_value=2**40))
def test_in_order_losses_keep_the_timeline(steps, start_ms):
    stats = SessionStats("twilio")
    gaps = _filler(stats)
    ts = start_ms - start_ms % 20
    first = ts
    out = gaps.frames(_media(ts))
    for step in steps:                         # each step: 1 = next frame, k = k-1 frames lost
        ts += 20 * step
        out += gaps.frames(_media(ts))
    assert all(len(f) == UP_FRAME_BYTES for f in out)
    assert len(out) == (ts - first) // 20 + 1
    assert stats.concealed_frames == len(out) - (len(steps) + 1)
    assert stats.gaps_in == sum(1 for s in steps if s > 1)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=2**33),
                          st.sampled_from([0, 1, 2, 5, 7])), max_size=40))
def test_any_numbering_never_raises(items):
    stats = SessionStats("twilio")
    gaps = _filler(stats)
    for ts, frames in items:
        pcm = FRAME * frames if frames else FRAME[:300]
        out = gaps.frames(_media(ts, pcm))
        assert all(isinstance(f, bytes) for f in out)
        if frames:
            assert all(len(f) == UP_FRAME_BYTES for f in out)
        else:
            assert out == [pcm]                            # not whole frames: as it is
    assert stats.late_in >= 0 and stats.concealed_frames >= 0


def test_late_and_duplicate_frames_are_dropped_and_counted():
    stats = SessionStats("twilio")
    gaps = _filler(stats)
    assert gaps.frames(_media(0)) == [FRAME]
    assert gaps.frames(_media(20)) == [FRAME]
    assert gaps.frames(_media(20)) == []               # duplicate
    assert gaps.frames(_media(0)) == []                # behind the playout point
    assert stats.late_in == 2
    assert gaps.frames(_media(None)) == [FRAME]        # nothing to number by: as is


def test_a_jump_over_two_seconds_is_a_resync_not_invented_audio():
    stats = SessionStats("twilio")
    gaps = _filler(stats)
    gaps.frames(_media(0))
    assert len(gaps.frames(_media(1980))) == 99        # 98 lost frames: concealed
    assert len(gaps.frames(_media(1980 + 5000))) == 1  # 5 s jump: start over
    assert stats.concealed_frames == 98


def test_chunk_counters_number_whole_chunks():
    """Exotel-style: no timestamp, a chunk counter over chunks of several frames; a lost chunk is
    concealed with a chunk's worth of frames; bad base64 is a ValueError (counted by the leg)."""
    stats = SessionStats("exotel")
    gaps = _filler(stats)
    chunk = FRAME * 5
    assert gaps.frames(_media(None, chunk, chunk=1)) == [FRAME] * 5
    assert len(gaps.frames(_media(None, chunk, chunk=3))) == 10       # chunk 2 lost: 5 concealed
    assert stats.gaps_in == 1 and stats.concealed_frames == 5
    try:
        gaps.frames(MediaReceived("not base64!", None, 4, None))
        raise AssertionError("bad base64 accepted")
    except ValueError:
        pass


def test_fused_native_step_equals_put_then_drain():
    """The one-call path gives, frame for frame, what the jitter buffer's put + drain gives."""
    import random

    from gateway.audio import JitterBuffer
    rng = random.Random(7)
    stats = SessionStats("twilio")
    gaps = _filler(stats)
    ref = JitterBuffer(UP_FRAME_BYTES, capacity=64, min_delay=0, max_delay=0, max_gap=100)
    seq = 0
    for _ in range(2000):
        seq = max(0, seq + rng.choice([1, 1, 1, 1, 2, 3, 0, -1, -2, 150]))
        pcm = rng.randbytes(UP_FRAME_BYTES)
        got = gaps.frames(_media(seq * 20, pcm))
        want = []
        if ref.put(seq, pcm) in ("stored", "resync"):
            want = [data for data, _ in ref.drain()]
        assert got == want
