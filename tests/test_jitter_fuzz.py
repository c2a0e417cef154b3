"""Property tests for the native jitter buffer through its wrapper (RELIABILITY.md point 2).

Random sequence numbers (around the 2**32 wrap), duplicates, late and far-future frames, clears and
resets never crash it, and its bookkeeping always balances: every frame put is played, dropped as
late/duplicate/overflow/discarded/flushed, or still buffered; every tick is one output frame.
"""
import os
import struct

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.audio import JitterBuffer

# CI: 1,000 derandomized examples per property. A deeper random hunt:
#   JITTER_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/test_jitter_fuzz.py
_DEEP = int(os.environ.get("JITTER_FUZZ_EXAMPLES", "0"))
PROPERTY = settings(max_examples=_DEEP or 1000, derandomize=not _DEEP, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
WRAP = 2**32


def frame(seq: int, fb: int) -> bytes:
    """seq in the first 4 bytes, then a constant non-zero pattern."""
    return struct.pack("<I", seq % WRAP) + b"\x11\x22" * ((fb - 4) // 2)


def balanced(s: dict, capacity: int, min_delay: int, max_delay: int) -> None:
    accounted = (s["played"] + s["late"] + s["duplicate"] + s["overflow"] + s["discarded"]
                 + s["flushed"] + s["buffered"])
    assert s["received"] == accounted, s
    assert s["ticks"] == s["played"] + s["concealed"] + s["silence"], s
    assert 0 <= s["buffered"] <= capacity, s
    assert min_delay <= s["target_delay"] <= max_delay, s


configs = st.tuples(
    st.sampled_from([4, 8, 64]),          # frame_bytes
    st.integers(1, 12),                   # capacity
    st.integers(0, 11),                   # max_delay (clamped below capacity)
    st.integers(0, 11),                   # min_delay (clamped to max_delay)
    st.integers(0, 40),                   # extra max_gap above capacity
).map(lambda t: (t[0], t[1], min(t[3], min(t[2], t[1] - 1)), min(t[2], t[1] - 1), t[1] + t[4]))

# An operation: ("put", offset from a moving cursor) / ("jump", delta) / ("get",) / clear / reset.
ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.integers(-6, 6)),
    st.tuples(st.just("put"), st.integers(-(2**31), 2**31)),
    st.tuples(st.just("jump"), st.integers(0, 80)),
    st.tuples(st.just("get")),
    st.tuples(st.just("get")),
    st.tuples(st.just("clear")),
    st.tuples(st.just("reset")),
), max_size=120)


@PROPERTY
@given(cfg=configs, start=st.integers(WRAP - 40, WRAP + 40), program=ops)
@example(cfg=(4, 1, 0, 0, 1), start=WRAP - 1, program=[("put", 0), ("put", 2), ("get",), ("put", 1)])
def test_random_programs_never_crash_and_balance(cfg, start, program):
    fb, capacity, min_delay, max_delay, max_gap = cfg
    jb = JitterBuffer(frame_bytes=fb, capacity=capacity, min_delay=min_delay,
                      max_delay=max_delay, max_gap=max_gap)
    cursor = start
    last_real = None  # (seq) of the last real frame in the current stream
    last_real_frame = None
    for op in program:
        if op[0] == "put":
            seq = (cursor + op[1]) % WRAP
            result = jb.put(seq, frame(seq, fb))
            assert result in JitterBuffer.PUT_RESULTS
            if result == "resync":
                last_real = None
            if op[1] == 0:
                cursor += 1
        elif op[0] == "jump":
            cursor += op[1]
        elif op[0] == "get":
            data, kind = jb.get()
            assert len(data) == fb and kind in JitterBuffer.KINDS
            if kind == "real":
                seq = struct.unpack("<I", data[:4])[0]
                assert data == frame(seq, fb)  # exactly what was put under that seq
                if last_real is not None:  # real frames of one stream only move forward
                    assert 0 < (seq - last_real) % WRAP < 2**31
                last_real, last_real_frame = seq, data
            elif kind == "silence":
                assert data == bytes(fb)
            else:  # a fade of the last real frame: never louder
                assert last_real_frame is not None
                got = struct.unpack(f"<{fb // 2}h", data)
                ref = struct.unpack(f"<{fb // 2}h", last_real_frame)
                assert all(abs(g) <= abs(r) for g, r in zip(got, ref))
        elif op[0] == "clear":
            jb.clear()
            last_real = last_real_frame = None
        else:
            jb.reset()
            last_real = last_real_frame = None
        balanced(jb.stats(), capacity, min_delay, max_delay)
    jb.close()


@PROPERTY
@given(start=st.integers(0, WRAP - 1),
       steps=st.lists(st.integers(1, 30), min_size=1, max_size=60),
       capacity=st.integers(1, 8))
def test_gap_filler_output_has_the_senders_length(start, steps, capacity):
    """Zero-delay mode, frames in order with gaps (no clock): draining after every put gives one
    output per sequence number from the first to the last, real exactly where a frame arrived."""
    jb = JitterBuffer(frame_bytes=8, capacity=capacity, max_delay=0, max_gap=max(capacity, 30))
    seq = start
    jb.put(seq, frame(seq, 8))
    out = jb.drain()
    assert out == [(frame(seq, 8), "real")]
    total = 1
    for step in steps:
        seq = (seq + step) % WRAP
        assert jb.put(seq, frame(seq, 8)) == "stored"
        got = jb.drain()
        assert len(got) == step
        assert got[-1] == (frame(seq, 8), "real")
        assert all(kind != "real" for _, kind in got[:-1])
        total += step
        assert jb.pending == 0
    s = jb.stats()
    assert s["ticks"] == total and s["lost"] == total - 1 - len(steps)
    balanced(s, capacity, 0, 0)


junk = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=3),
                 st.binary(max_size=70), st.integers(-(2**70), 2**70))


@PROPERTY
@given(args=st.fixed_dictionaries({}, optional={
    "frame_bytes": junk, "capacity": junk, "min_delay": junk, "max_delay": junk, "max_gap": junk}))
def test_constructor_rejects_garbage_cleanly(args):
    try:
        jb = JitterBuffer(**args)
    except (ValueError, TypeError) as e:
        assert str(e)
        return
    jb.close()


@PROPERTY
@given(seq=junk, data=st.one_of(junk, st.binary(min_size=8, max_size=8)))
def test_put_rejects_garbage_cleanly(seq, data):
    jb = JitterBuffer(frame_bytes=8, capacity=4, max_delay=0)
    try:
        result = jb.put(seq, data)
    except (ValueError, TypeError) as e:
        assert str(e)
        assert jb.stats()["received"] == 0
    else:
        assert result == "stored"
        assert jb.stats()["received"] == 1


@PROPERTY
@given(ts=st.one_of(junk, st.text(alphabet="0123456789-+. e٣", max_size=25)),
       frame_ms=st.one_of(st.just(20), junk))
def test_seq_from_ms_rejects_garbage_cleanly(ts, frame_ms):
    try:
        seq = JitterBuffer.seq_from_ms(ts, frame_ms)
    except (ValueError, TypeError) as e:
        assert str(e)
    else:
        assert 0 <= seq < WRAP
