"""GapFiller (the phone leg's inbound timeline keeper) as properties: whatever the provider's
frame numbering does, it never raises, hands out whole 20 ms frames, and for in-order audio with
losses the agent receives exactly as many frames as the call lasted (concealment fills gaps)."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from gateway.legs.phone import UP_FRAME_BYTES, GapFiller
from gateway.metrics import SessionStats
from gateway.protocols import MediaReceived

FRAME = bytes(range(256)) * 2 + bytes(128)       # 640 bytes of "speech"


def _media(ts_ms: int) -> MediaReceived:
    return MediaReceived("", None, None, ts_ms)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=60),
       st.integers(min_value=0, max_value=2**40))
def test_in_order_losses_keep_the_timeline(steps, start_ms):
    stats = SessionStats("twilio")
    gaps = GapFiller(stats)
    ts = start_ms - start_ms % 20
    first = ts
    out = gaps.frames(FRAME, _media(ts))
    for step in steps:                         # each step: 1 = next frame, k = k-1 frames lost
        ts += 20 * step
        out += gaps.frames(FRAME, _media(ts))
    assert all(len(f) == UP_FRAME_BYTES for f in out)
    assert len(out) == (ts - first) // 20 + 1
    assert stats.concealed_frames == len(out) - (len(steps) + 1)
    assert stats.gaps_in == sum(1 for s in steps if s > 1)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=2**33),
                          st.sampled_from([0, 1, 2, 5, 7])), max_size=40))
def test_any_numbering_never_raises(items):
    stats = SessionStats("twilio")
    gaps = GapFiller(stats)
    for ts, frames in items:
        pcm = FRAME * frames if frames else FRAME[:300]
        out = gaps.frames(pcm, _media(ts))
        assert all(isinstance(f, bytes) for f in out)
        if frames:
            assert all(len(f) == UP_FRAME_BYTES for f in out)
    assert stats.late_in >= 0 and stats.concealed_frames >= 0


def test_late_and_duplicate_frames_are_dropped_and_counted():
    stats = SessionStats("twilio")
    gaps = GapFiller(stats)
    assert len(gaps.frames(FRAME, _media(0))) == 1
    assert len(gaps.frames(FRAME, _media(20))) == 1
    assert gaps.frames(FRAME, _media(20)) == []        # duplicate
    assert gaps.frames(FRAME, _media(0)) == []         # behind the playout point
    assert stats.late_in == 2
    no_numbers = MediaReceived("", None, None, None)
    assert gaps.frames(FRAME, no_numbers) == [FRAME]   # nothing to number by: as is


def test_a_jump_over_two_seconds_is_a_resync_not_invented_audio():
    stats = SessionStats("twilio")
    gaps = GapFiller(stats)
    gaps.frames(FRAME, _media(0))
    assert len(gaps.frames(FRAME, _media(1980))) == 99        # 98 lost frames: concealed
    assert len(gaps.frames(FRAME, _media(1980 + 5000))) == 1  # 5 s jump: start over
    assert stats.concealed_frames == 98
