"""JitterBuffer scenarios through the Python wrapper (the C-level versions are in native/tests)."""
import struct
import wave

import pytest

from gateway.audio import JitterBuffer

FB = 640


def frame(seq: int, fb: int = FB) -> bytes:
    """A frame whose samples identify seq (never silent)."""
    v = 1000 + (seq * 2654435761 >> 20) % 20000
    return struct.pack("<h", v) * (fb // 2)


def consistent(st: dict) -> bool:
    accounted = (st["played"] + st["late"] + st["duplicate"] + st["overflow"] + st["discarded"]
                 + st["flushed"] + st["buffered"])
    return (st["received"] == accounted
            and st["ticks"] == st["played"] + st["concealed"] + st["silence"])


def test_in_order_zero_delay_comes_straight_out():
    jb = JitterBuffer(capacity=4, max_delay=0)
    assert jb.get() == (bytes(FB), "silence")
    for s in range(1000, 1300):
        assert jb.put(s, frame(s)) == "stored"
        assert jb.pending == 1
        assert jb.get() == (frame(s), "real")
        assert jb.pending == 0
    st = jb.stats()
    assert st["played"] == 300 and st["lost"] == 0 and st["delay"] == 0 and consistent(st)


def test_reordered_pairs_play_in_order():
    jb = JitterBuffer(capacity=16, min_delay=2, max_delay=2)
    played = []
    for i in range(0, 200, 2):
        for s in (i + 1, i):
            jb.put(s, frame(s))
            data, kind = jb.get()
            if kind == "real":
                played.append(data)
    assert played == [frame(s) for s in range(len(played))]
    assert len(played) >= 195
    st = jb.stats()
    assert st["lost"] == 0 and st["late"] == 0 and consistent(st)


def test_duplicates_dropped_buffered_or_played():
    jb = JitterBuffer(capacity=8, max_delay=0)
    assert jb.put(5, frame(5)) == "stored"
    assert jb.put(5, frame(5)) == "duplicate"
    assert jb.drain() == [(frame(5), "real")]
    assert jb.put(5, frame(5)) == "duplicate"
    assert jb.put(4, frame(4)) == "late"
    assert jb.drain() == []
    st = jb.stats()
    assert (st["duplicate"], st["late"], st["played"]) == (2, 1, 1) and consistent(st)


def test_burst_raises_the_target_and_stops_concealment():
    jb = JitterBuffer(capacity=32, min_delay=0, max_delay=10)
    seq, after_warmup = 0, []
    for t in range(1500):
        if t % 5 == 0:  # five frames every five ticks
            for _ in range(5):
                jb.put(seq, frame(seq))
                seq += 1
        _, kind = jb.get()
        if t > 300:
            after_warmup.append(kind)
    st = jb.stats()
    assert st["target_delay"] >= 4 and st["jitter"] >= 4
    assert set(after_warmup) == {"real"}
    assert consistent(st)


def test_recurring_delay_spikes_are_absorbed_not_chased():
    """A TCP-like path (in-order delivery) where 1 frame in 100 is held up 8 ticks, delaying the
    ones behind it: after the first spike the buffer keeps enough delay for the next ones instead
    of underrunning and then discarding audio to catch up every time (seeded, deterministic)."""
    import random
    rnd = random.Random(7)
    arrivals, last = [], 0
    for s in range(4000):
        last = max(s + (8 if rnd.random() < 0.01 else 0), last)
        arrivals.append((last, s))
    jb = JitterBuffer(capacity=32, min_delay=0, max_delay=10)
    i, kinds = 0, []
    for tick in range(4000):
        while i < len(arrivals) and arrivals[i][0] <= tick:
            jb.put(arrivals[i][1], frame(arrivals[i][1]))
            i += 1
        kinds.append(jb.get()[1])
    after_first_spike = kinds[400:]
    st = jb.stats()
    assert after_first_spike.count("real") >= 0.995 * len(after_first_spike)
    assert st["discarded"] <= 10 and st["late"] == 0 and 6 <= st["target_delay"] <= 10
    assert consistent(st)


def test_steady_sender_keeps_min_delay():
    jb = JitterBuffer(capacity=32, min_delay=1, max_delay=10)
    for s in range(500):
        jb.put(s, frame(s))
        assert jb.get()[1] == ("real" if s >= 1 else "silence")
    assert jb.stats()["target_delay"] == 1


def test_loss_is_concealed_with_a_fade_then_silence():
    jb = JitterBuffer(capacity=8, max_delay=0)
    jb.put(0, frame(0))
    jb.drain()
    jb.put(8, frame(8))  # 1..7 lost
    out = jb.drain()
    assert [k for _, k in out] == ["concealed"] * 4 + ["silence"] * 3 + ["real"]
    peaks = [max(abs(x) for x in struct.unpack(f"<{FB // 2}h", d)) for d, _ in out[:4]]
    assert peaks == sorted(peaks, reverse=True) and peaks[0] <= struct.unpack("<h", frame(0)[:2])[0]
    assert out[3][0][-2:] == b"\x00\x00"  # the last repeat fades to zero: no click into silence
    assert out[-1][0] == frame(8)
    st = jb.stats()
    assert st["lost"] == 7 and st["concealed"] == 4 and st["silence"] == 3 and consistent(st)


def test_long_gap_filled_to_its_exact_length_through_a_small_ring():
    jb = JitterBuffer(capacity=8, max_delay=0, max_gap=500)
    jb.put(10, frame(10))
    jb.drain()
    assert jb.put(10 + 301, frame(311)) == "stored"
    out = jb.drain()
    assert len(out) == 301 and out[-1] == (frame(311), "real")
    assert jb.put(200, frame(200)) == "late"
    # beyond max_gap: a resync, no fill
    assert jb.put(311 + 10_000, frame(1)) == "resync"
    assert jb.drain() == [(frame(1), "real")]
    st = jb.stats()
    assert st["lost"] == 300 and st["resyncs"] == 1 and consistent(st)


def test_clocked_outage_does_not_add_delay():
    jb = JitterBuffer(capacity=16, min_delay=3, max_delay=3)
    seq = 0
    for _ in range(100):
        jb.put(seq, frame(seq))
        seq += 1
        jb.get()
    seq += 150  # lost upstream while the clock keeps ticking
    for _ in range(150):
        jb.get()
    kinds = []
    for _ in range(100):
        jb.put(seq, frame(seq))
        seq += 1
        kinds.append(jb.get()[1])
    assert kinds.count("real") >= 95
    assert jb.stats()["delay"] <= 4


def test_wraparound_and_unbounded_counters():
    jb = JitterBuffer(capacity=8, max_delay=0)
    for s in range(2**32 - 20, 2**32 + 20):  # ints past 2**32 wrap like the provider's counter
        assert jb.put(s, frame(s % 2**32)) == "stored"
        assert jb.drain() == [(frame(s % 2**32), "real")]
    jb.reset()
    jb.put(2**32 - 2, frame(1))
    jb.drain()
    jb.put(3, frame(3))
    assert jb.pending == 5  # 2**32-1, 0, 1, 2 missing, then 3
    assert [k for _, k in jb.drain()][-1] == "real"
    assert consistent(jb.stats())


def test_clear_drops_buffered_audio_for_barge_in():
    jb = JitterBuffer(capacity=16, min_delay=3, max_delay=3)
    for s in range(4):
        jb.put(s, frame(s))
    assert jb.get() == (frame(0), "real")
    jb.clear()
    st = jb.stats()
    assert st["buffered"] == 0 and st["flushed"] == 3 and consistent(st)
    assert jb.get() == (bytes(FB), "silence")  # no fade tail of cleared audio
    assert jb.put(90_000, frame(7)) == "stored"  # a new stream starts anywhere
    jb.reset()
    assert jb.stats()["received"] == 0 and jb.stats()["target_delay"] == 3


def test_overflow_drops_oldest():
    jb = JitterBuffer(capacity=4, max_delay=0)
    results = [jb.put(s, frame(s)) for s in range(10)]
    assert results[:4] == ["stored"] * 4 and results[4:] == ["overflow"] * 6
    assert jb.stats()["overflow"] == 6
    assert jb.drain() == [(frame(s), "real") for s in range(6, 10)]
    assert consistent(jb.stats())


def test_get_into_preallocated_buffer():
    jb = JitterBuffer(frame_bytes=320, capacity=4, max_delay=0)
    buf = bytearray(320)
    assert jb.get_into(buf) == "silence"
    jb.put(1, frame(1, 320))
    assert jb.get_into(memoryview(buf)) == "real" and bytes(buf) == frame(1, 320)
    with pytest.raises(TypeError, match="writable"):
        jb.get_into(bytes(320))
    with pytest.raises(ValueError, match="frame_bytes=320"):
        jb.get_into(bytearray(100))


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"frame_bytes": 641}, ValueError, "even"),
    ({"frame_bytes": 0}, ValueError, "frame_bytes"),
    ({"frame_bytes": 640.0}, TypeError, "frame_bytes"),
    ({"capacity": 0}, ValueError, "capacity"),
    ({"capacity": True}, TypeError, "capacity"),
    ({"capacity": 4, "max_delay": 4}, ValueError, "max_delay"),
    ({"min_delay": 5, "max_delay": 2}, ValueError, "min_delay"),
    ({"min_delay": -1}, ValueError, "min_delay"),
    ({"capacity": 50, "max_gap": 49}, ValueError, "max_gap"),
    ({"max_gap": 2**31}, ValueError, "max_gap"),
    ({"frame_bytes": 65536, "capacity": 65536, "max_gap": 65536}, ValueError, "capacity \\* frame_bytes"),
])
def test_constructor_errors_name_the_problem(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        JitterBuffer(**kwargs)


def test_put_errors_name_the_problem():
    jb = JitterBuffer(capacity=4, max_delay=0)
    with pytest.raises(ValueError, match="frame_bytes=640"):
        jb.put(1, b"\x00" * 320)
    with pytest.raises(TypeError, match="frame"):
        jb.put(1, "x" * 640)
    with pytest.raises(TypeError, match="seq"):
        jb.put("1", frame(1))
    with pytest.raises(TypeError, match="seq"):
        jb.put(True, frame(1))
    with pytest.raises(ValueError, match="seq"):
        jb.put(-1, frame(1))
    with pytest.raises(ValueError, match="contiguous"):
        jb.put(1, memoryview(frame(1) * 2)[::2])
    assert jb.stats()["received"] == 0
    assert jb.put(1, memoryview(bytearray(frame(1)))) == "stored"


def test_seq_from_ms_rounds_to_frames():
    assert [JitterBuffer.seq_from_ms(t) for t in (0, 9, 11, 20, 29, 31, "5", "40")] == [0, 0, 1, 1, 1, 2, 0, 2]
    assert JitterBuffer.seq_from_ms("1705312200000") == (1705312200000 + 10) // 20 % 2**32
    assert JitterBuffer.seq_from_ms(100, frame_ms=10) == 10
    for bad, exc in (("-5", ValueError), ("1e3", ValueError), ("", ValueError), (-1, ValueError),
                     (1.5, TypeError), (None, TypeError), (True, TypeError)):
        with pytest.raises(exc, match="timestamp_ms"):
            JitterBuffer.seq_from_ms(bad)
    with pytest.raises(ValueError, match="frame_ms"):
        JitterBuffer.seq_from_ms(5, frame_ms=0)


def test_gap_seen_only_in_timestamps_is_filled():
    """Chunk counters stay contiguous when the provider drops audio; timestamps jump (and wobble)."""
    jb = JitterBuffer(capacity=8, max_delay=0)
    out = []
    for ts in (0, 21, 39, 60, 161, 181):  # 80..140 ms dropped upstream
        jb.put(JitterBuffer.seq_from_ms(ts), frame(ts))
        out.extend(kind for _, kind in jb.drain())
    assert out == ["real"] * 4 + ["concealed"] * 4 + ["real"] * 2


def test_drain_refuses_the_clocked_mode():
    with pytest.raises(ValueError, match="max_delay=0"):
        JitterBuffer(max_delay=5).drain()


def test_close_and_context_manager():
    with JitterBuffer(capacity=4, max_delay=0) as jb:
        jb.put(1, frame(1))
    with pytest.raises(ValueError, match="closed"):
        jb.get()
    jb.close()  # idempotent


def _read_wav(path):
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.readframes(w.getnframes())


def test_gap_filler_keeps_real_speech_timeline(shared_audio):
    """Inbound leg: 16 kHz speech in 20 ms frames, every 7th frame and a 1 s run lost upstream.
    The drained output is exactly as long as the input and bit-exact wherever a frame arrived."""
    pcm = _read_wav(shared_audio / "en_hello_16k.wav")
    frames = [pcm[i:i + FB] for i in range(0, len(pcm) - FB + 1, FB)]
    lost = {i for i in range(len(frames)) if i % 7 == 3} | set(range(100, 150))
    jb = JitterBuffer(frame_bytes=FB, capacity=8, max_delay=0)
    out = []
    base = 2**32 - 60  # Twilio's counter may be anywhere; cross the wrap on the way
    for i, f in enumerate(frames):
        if i not in lost:
            jb.put(base + i, f)
            out.extend(jb.drain())
    last = max(i for i in range(len(frames)) if i not in lost)
    assert len(out) == last + 1
    for i, (data, kind) in enumerate(out):
        if i in lost:
            assert kind in ("concealed", "silence")
        else:
            assert (data, kind) == (frames[i], "real")
    st = jb.stats()
    assert st["lost"] == len([i for i in lost if i <= last]) and consistent(st)
