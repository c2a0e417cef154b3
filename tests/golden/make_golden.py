"""Writes the golden media-stream transcripts (``{twilio,plivo,exotel}_session.jsonl``).

Run once by hand (``python tests/golden/make_golden.py``); the JSONL files are committed and
reviewed. Deliberately independent of ``gateway.protocols``: the provider messages are shaped
after protocols.md §1.3-1.4, §3.3-3.4 and §4.2 (real speech from ../shared/audio as payload), and
the expected events and rendered messages are written out here by hand, so replaying them tests
the codecs instead of echoing them.

Line format (one JSON object per line):
  {"recv": <provider message>, "events": [[EventName, {fields}], ...], "state": "..."}
  {"send": [OutboundName, {fields}], "wire": <message we must render>, "state": "..."}
  {"clear": true, "wire": <clear message>, "cleared": [[ "MarkPlayed", {...}], ...]}
  {"close": true, "events": [...], "state": "..."}
"""
from __future__ import annotations

import base64
import json
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
AUDIO = HERE.parent.parent.parent / "shared" / "audio"


def wav_data(path: pathlib.Path) -> bytes:
    """The ``data`` chunk of a RIFF file (works for µ-law WAVs, which ``wave`` refuses)."""
    raw = path.read_bytes()
    pos = 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        if cid == b"data":
            return raw[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    raise ValueError(f"no data chunk in {path}")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write(name: str, lines: list[dict]) -> None:
    with open(HERE / name, "w") as f:
        for line in lines:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")


def media_event(payload: str, seq, chunk, ts) -> list:
    return ["MediaReceived", {"payload": payload, "sequence": seq, "chunk": chunk, "timestamp": ts}]


def mark(name: str, cleared: bool = False) -> list:
    return ["MarkPlayed", {"name": name, "cleared": cleared}]


def twilio(ulaw: bytes) -> list[dict]:
    sid, call, acct = "MZ18ad3ab5a668481ce02b83e7395059f0", "CA2b1c9a6c5e3f4d7a8b9c0d1e2f3a4b5c", "AC" + "0" * 32
    frames = [b64(ulaw[i:i + 160]) for i in range(8000, 8000 + 160 * 6, 160)]
    reply = [b64(ulaw[i:i + 160]) for i in range(16000, 16000 + 160 * 3, 160)]
    params = {"stream_token": "v1.eyJjIjoiY2gxIn0.sig", "tenant": "acme"}
    L = []
    L.append({"recv": {"event": "connected", "protocol": "Call", "version": "1.0.0"},
              "events": [["StreamConnected", {"protocol": "Call", "version": "1.0.0"}]], "state": "connected"})
    L.append({"recv": {"event": "start", "sequenceNumber": "1", "start": {
                  "accountSid": acct, "streamSid": sid, "callSid": call, "tracks": ["inbound"],
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                  "customParameters": params}, "streamSid": sid},
              "events": [["StreamStarted", {
                  "stream_id": sid, "call_id": call, "account_id": acct,
                  "media_format": {"encoding": "mulaw", "sample_rate": 8000, "channels": 1},
                  "custom_parameters": params, "tracks": ["inbound"], "from_number": None,
                  "to_number": None, "sequence": 1}]], "state": "started"})
    seq = 2
    for i, payload in enumerate(frames[:3]):
        L.append({"recv": {"event": "media", "sequenceNumber": str(seq), "streamSid": sid,
                           "media": {"track": "inbound", "chunk": str(i + 1), "timestamp": str(20 * i), "payload": payload}},
                  "events": [media_event(payload, seq, i + 1, 20 * i)], "state": "streaming"})
        seq += 1
    L.append({"send": ["SendMedia", {"payload": reply[0]}],
              "wire": {"event": "media", "streamSid": sid, "media": {"payload": reply[0]}}, "state": "streaming"})
    L.append({"send": ["SendMark", {"name": "utt-1"}],
              "wire": {"event": "mark", "streamSid": sid, "mark": {"name": "utt-1"}}, "state": "streaming"})
    L.append({"recv": {"event": "dtmf", "streamSid": sid, "sequenceNumber": str(seq),
                       "dtmf": {"track": "inbound_track", "digit": "1"}},
              "events": [["DtmfReceived", {"digit": "1", "duration_ms": None}]], "state": "streaming"})
    seq += 1
    L.append({"recv": {"event": "mark", "sequenceNumber": str(seq), "streamSid": sid, "mark": {"name": "utt-1"}},
              "events": [mark("utt-1")], "state": "streaming"})
    seq += 1
    for payload in reply[1:]:
        L.append({"send": ["SendMedia", {"payload": payload}],
                  "wire": {"event": "media", "streamSid": sid, "media": {"payload": payload}}, "state": "streaming"})
    for name in ("utt-2", "utt-3"):
        L.append({"send": ["SendMark", {"name": name}],
                  "wire": {"event": "mark", "streamSid": sid, "mark": {"name": name}}, "state": "streaming"})
    # Barge-in: both marks were pending, so both are reported cleared now...
    L.append({"clear": True, "wire": {"event": "clear", "streamSid": sid},
              "cleared": [mark("utt-2", True), mark("utt-3", True)], "state": "streaming"})
    # ...and Twilio's immediate echoes of them (§1.4) must not be reported as played.
    for name in ("utt-2", "utt-3"):
        L.append({"recv": {"event": "mark", "sequenceNumber": str(seq), "streamSid": sid, "mark": {"name": name}},
                  "events": [], "state": "streaming"})
        seq += 1
    for i, payload in enumerate(frames[3:], start=3):
        L.append({"recv": {"event": "media", "sequenceNumber": str(seq), "streamSid": sid,
                           "media": {"track": "inbound", "chunk": str(i + 1), "timestamp": str(20 * i), "payload": payload}},
                  "events": [media_event(payload, seq, i + 1, 20 * i)], "state": "streaming"})
        seq += 1
    L.append({"recv": {"event": "stop", "sequenceNumber": str(seq), "streamSid": sid,
                       "stop": {"accountSid": acct, "callSid": call}},
              "events": [["StreamStopped", {"reason": "stopped"}]], "state": "stopped"})
    L.append({"close": True, "events": [["StreamClosed", {"after_stop": True}]], "state": "stopped"})
    return L


def plivo(ulaw: bytes) -> list[dict]:
    sid, call, acct = "b4a4c1c4-7f3e-4a55-9d0e-3f2f1e6d5c4b", "3a2b1c0d-9e8f-4a7b-8c6d-5e4f3a2b1c0d", "MAXXXXXXXXXXXXXXXXXX"
    frames = [b64(ulaw[i:i + 160]) for i in range(24000, 24000 + 160 * 4, 160)]
    reply = b64(ulaw[30000:30000 + 800])
    L = []
    L.append({"recv": {"event": "start", "sequenceNumber": 1, "start": {
                  "callId": call, "streamId": sid, "accountId": acct, "tracks": ["inbound"],
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}},
                  "extra_headers": "tenant=acme;callToken=abc123"},
              "events": [["StreamStarted", {
                  "stream_id": sid, "call_id": call, "account_id": acct,
                  "media_format": {"encoding": "mulaw", "sample_rate": 8000, "channels": 1},
                  "custom_parameters": {"tenant": "acme", "callToken": "abc123"}, "tracks": ["inbound"],
                  "from_number": None, "to_number": None, "sequence": 1}]], "state": "started"})
    t0 = 1705312200000
    for i, payload in enumerate(frames[:2]):
        L.append({"recv": {"event": "media", "sequenceNumber": i + 2, "streamId": sid,
                           "media": {"track": "inbound", "timestamp": str(t0 + 20 * i), "chunk": i + 1, "payload": payload},
                           "extra_headers": "tenant=acme;callToken=abc123"},
                  "events": [media_event(payload, i + 2, i + 1, t0 + 20 * i)], "state": "streaming"})
    L.append({"send": ["SendMedia", {"payload": reply}],
              "wire": {"event": "playAudio", "streamId": sid,
                       "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": reply}}, "state": "streaming"})
    L.append({"send": ["SendMark", {"name": "greeting-1"}],
              "wire": {"event": "checkpoint", "streamId": sid, "name": "greeting-1"}, "state": "streaming"})
    L.append({"recv": {"event": "playedStream", "streamId": sid, "name": "greeting-1"},
              "events": [mark("greeting-1")], "state": "streaming"})
    L.append({"recv": {"event": "dtmf", "streamId": sid, "dtmf": {"digit": "5", "track": "inbound"}},
              "events": [["DtmfReceived", {"digit": "5", "duration_ms": None}]], "state": "streaming"})
    L.append({"send": ["SendMedia", {"payload": reply}],
              "wire": {"event": "playAudio", "streamId": sid,
                       "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": reply}}, "state": "streaming"})
    L.append({"send": ["SendMark", {"name": "greeting-2"}],
              "wire": {"event": "checkpoint", "streamId": sid, "name": "greeting-2"}, "state": "streaming"})
    # clearAudio: Plivo never acks the pending checkpoint (§3.4): it is reported cleared at once.
    L.append({"clear": True, "wire": {"event": "clearAudio", "streamId": sid},
              "cleared": [mark("greeting-2", True)], "state": "streaming"})
    L.append({"recv": {"event": "clearedAudio", "sequenceNumber": 0, "streamId": sid},
              "events": [["AudioCleared", {}]], "state": "streaming"})
    for i, payload in enumerate(frames[2:], start=2):
        L.append({"recv": {"event": "media", "sequenceNumber": i + 2, "streamId": sid,
                           "media": {"track": "inbound", "timestamp": str(t0 + 20 * i), "chunk": i + 1, "payload": payload}},
                  "events": [media_event(payload, i + 2, i + 1, t0 + 20 * i)], "state": "streaming"})
    # Plivo usually ends by closing the socket, without a stop event.
    L.append({"close": True, "events": [["StreamClosed", {"after_stop": False}]], "state": "stopped"})
    return L


def exotel(pcm16_16k: bytes) -> list[dict]:
    sid, call, acct = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6", "f0e1d2c3b4a5968778695a4b3c2d1e0f", "exotel_acme1"
    # 8 kHz PCM16LE: every other sample of the 16 kHz recording (crude, but real speech).
    samples = [pcm16_16k[i:i + 2] for i in range(0, len(pcm16_16k) - 1, 4)]
    pcm8k = b"".join(samples)
    inbound = [b64(pcm8k[i:i + 1600]) for i in range(16000, 16000 + 1600 * 3, 1600)]  # 100 ms each
    reply = b64(pcm8k[40000:40000 + 3200])   # one minimum chunk: 3200 B = 200 ms at 8 kHz
    L = []
    L.append({"recv": {"event": "connected"}, "events": [["StreamConnected", {"protocol": "", "version": ""}]],
              "state": "connected"})
    L.append({"recv": {"event": "start", "sequence_number": "1", "stream_sid": sid, "start": {
                  "stream_sid": sid, "call_sid": call, "account_sid": acct, "from": "+919876543210",
                  "to": "+918012345678", "custom_parameters": {"key": "k-123", "lang": "en"},
                  "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"}}},
              "events": [["StreamStarted", {
                  "stream_id": sid, "call_id": call, "account_id": acct,
                  "media_format": {"encoding": "l16", "sample_rate": 8000, "channels": 1},
                  "custom_parameters": {"key": "k-123", "lang": "en"}, "tracks": [],
                  "from_number": "+919876543210", "to_number": "+918012345678", "sequence": 1}]], "state": "started"})
    for i, payload in enumerate(inbound[:2]):
        L.append({"recv": {"event": "media", "sequence_number": str(i + 2), "stream_sid": sid,
                           "media": {"chunk": str(i + 1), "timestamp": str(100 * (i + 1)), "payload": payload}},
                  "events": [media_event(payload, i + 2, i + 1, 100 * (i + 1))], "state": "streaming"})
    L.append({"send": ["SendMedia", {"payload": reply}],
              "wire": {"event": "media", "stream_sid": sid, "media": {"payload": reply}}, "state": "streaming"})
    L.append({"send": ["SendMark", {"name": "turn-3-end"}],
              "wire": {"event": "mark", "stream_sid": sid, "mark": {"name": "turn-3-end"}}, "state": "streaming"})
    L.append({"recv": {"event": "dtmf", "sequence_number": "4", "stream_sid": sid, "dtmf": {"digit": "5", "duration": "100"}},
              "events": [["DtmfReceived", {"digit": "5", "duration_ms": 100}]], "state": "streaming"})
    L.append({"recv": {"event": "mark", "sequence_number": "5", "stream_sid": sid, "mark": {"name": "turn-3-end"}},
              "events": [mark("turn-3-end")], "state": "streaming"})
    L.append({"send": ["SendMedia", {"payload": reply}],
              "wire": {"event": "media", "stream_sid": sid, "media": {"payload": reply}}, "state": "streaming"})
    L.append({"send": ["SendMark", {"name": "turn-4-end"}],
              "wire": {"event": "mark", "stream_sid": sid, "mark": {"name": "turn-4-end"}}, "state": "streaming"})
    L.append({"clear": True, "wire": {"event": "clear", "stream_sid": sid},
              "cleared": [mark("turn-4-end", True)], "state": "streaming"})
    L.append({"recv": {"event": "media", "sequence_number": "6", "stream_sid": sid,
                       "media": {"chunk": "3", "timestamp": "300", "payload": inbound[2]}},
              "events": [media_event(inbound[2], 6, 3, 300)], "state": "streaming"})
    L.append({"recv": {"event": "stop", "sequence_number": "7", "stream_sid": sid,
                       "stop": {"call_sid": call, "account_sid": acct, "reason": "callended"}},
              "events": [["StreamStopped", {"reason": "callended"}]], "state": "stopped"})
    L.append({"close": True, "events": [["StreamClosed", {"after_stop": True}]], "state": "stopped"})
    return L


def main() -> None:
    ulaw = wav_data(AUDIO / "en_hello_8k_ulaw.wav")
    pcm16 = wav_data(AUDIO / "en_hello_16k.wav")
    write("twilio_session.jsonl", twilio(ulaw))
    write("plivo_session.jsonl", plivo(ulaw))
    write("exotel_session.jsonl", exotel(pcm16))


if __name__ == "__main__":
    main()
