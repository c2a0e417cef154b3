"""The per-frame fast paths that save a task switch: ``WebSocket.try_send_binary`` (write without
yielding, in order, with a partial write finished by ``flush()``) and ``Inbox.direct`` (a frame
handed straight to the consumer only when nothing is queued ahead of it)."""
from __future__ import annotations

import trio

from gateway import transport
from gateway.limits import Limits
from gateway.metrics import SessionStats
from gateway.session import Inbox


async def test_try_send_binary_keeps_order_through_a_full_socket(nursery):
    limits = Limits(socket_sndbuf=4096)
    got: list[bytes] = []
    reading = trio.Event()
    done = trio.Event()

    async def handler(hs):
        ws = await hs.accept()
        await reading.wait()
        try:
            while True:
                got.append(await ws.receive())
        except transport.ConnectionClosed:
            done.set()

    listeners = await transport.open_listeners("127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(transport.serve, handler, listeners, limits)
    ws = await transport.connect(f"ws://127.0.0.1:{port}/", limits=limits)
    sent, results = [], []
    for i in range(5000):                      # until the kernel's buffers are full
        frame = i.to_bytes(4, "big") * 8000
        result = ws.try_send_binary(frame)
        results.append(result)
        if result == transport.NOT_SENT:
            break
        sent.append(frame)
    assert transport.PENDING in results and results[-1] == transport.NOT_SENT
    assert results.index(transport.PENDING) == len(results) - 2      # nothing jumps a partial write
    reading.set()
    with trio.fail_after(30):
        await ws.flush()
        await ws.send(b"last")
        await ws.close()
        await done.wait()
    assert got == sent + [b"last"]


def test_inbox_direct_only_with_nothing_queued():
    stats = SessionStats("web")
    inbox = Inbox(8, stats)
    taken: list = []
    answer = {"value": True}

    def direct(frame):
        taken.append(frame)
        return answer["value"]

    inbox.direct = direct
    inbox.put(b"\x01\x00", 0.0)                 # taken: not queued, zero added latency
    assert taken == [b"\x01\x00"] and len(inbox) == 0 and stats.added_latency.total == 1
    answer["value"] = "flush-token"
    inbox.put(b"\x02\x00", 0.0)                 # taken in part: the token queues in its place
    assert len(inbox) == 1
    inbox.put(b"\x03\x00", 0.0)                 # something is queued ahead: not offered
    assert taken == [b"\x01\x00", b"\x02\x00"] and len(inbox) == 2
    answer["value"] = False
    inbox._items.clear(), inbox._times.clear()
    inbox.put(b"\x04\x00", 0.0)                 # refused: queued as usual
    assert len(inbox) == 1 and inbox._items[0] == b"\x04\x00"


async def test_simple_frame_reader_matches_the_protocol_parser():
    """The transport's own reader for plain frames delivers exactly what ``websockets`` would,
    whatever the mix (pings, fragments, RSV/oversize falling back) and however TCP cuts it."""
    import random
    import socket

    from websockets.frames import Frame, Opcode
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    rng = random.Random(5)
    for case in range(150):
        frames, expected = [], []
        for _ in range(rng.randint(1, 12)):
            kind = rng.random()
            size = rng.choice([0, 1, 125, 126, 300, 640, 65535, 70000]) if kind < 0.1 else \
                rng.randint(0, 700)
            payload = rng.randbytes(size)
            if kind < 0.55:
                frames.append(Frame(Opcode.BINARY, payload))
                expected.append(payload)
            elif kind < 0.8:
                text = "".join(rng.choice("aé€z{}") for _ in range(size // 3))
                frames.append(Frame(Opcode.TEXT, text.encode()))
                expected.append(text)
            elif kind < 0.9:
                frames.append(Frame(Opcode.PING, payload[:100]))
            else:                                  # a fragmented binary message
                cut = len(payload) // 2
                frames.append(Frame(Opcode.BINARY, payload[:cut], fin=False))
                frames.append(Frame(Opcode.CONT, payload[cut:]))
                expected.append(payload)
        wire = b"".join(f.serialize(mask=True) for f in frames)
        a, b = socket.socketpair()
        a.setblocking(False)
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(a))
        proto = ServerProtocol(max_size=64 * 1024)
        proto.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        proto.send_response(proto.accept(proto.events_received()[0]))
        proto.data_to_send()
        assert proto.state is State.OPEN
        ws = transport.WebSocket(stream, proto, Limits())
        got = []
        async with trio.open_nursery() as nursery:
            peer = trio.SocketStream(trio.socket.from_stdlib_socket(b))

            async def writer():
                # Non-blocking writes (a blocking sendall larger than the socket buffer would
                # stall the one thread the reader needs); the reader may close first (1009).
                i = 0
                try:
                    while i < len(wire):
                        step = rng.choice([1, 2, 7, 100, 700, 5000, len(wire)])
                        await peer.send_all(wire[i:i + step])
                        i += step
                        await trio.sleep(0)
                    await peer.send_eof()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            nursery.start_soon(writer)
            with trio.fail_after(30):
                try:
                    while True:
                        got.append(await ws.receive())
                except transport.ConnectionClosed:
                    pass
        a.close(), b.close()
        oversized = [m for m in expected if len(m) > 64 * 1024]
        if oversized:                      # the protocol refuses it (1009): a prefix arrives
            assert got == expected[:len(got)] and ws.closed.code == 1009, case
        else:
            assert got == expected, (case, ws.closed, len(got))


def test_render_frame_is_what_the_protocol_parses():
    """Our own frame rendering (the send fast path) against websockets' frame parser: masked
    (client) and unmasked (server), every length encoding, text and binary; client masks are
    fresh for every frame."""
    from websockets.frames import Frame, Opcode
    from websockets.streams import StreamReader

    for masked in (True, False):
        for n in (0, 1, 125, 126, 640, 65535, 65536, 70000):
            for first, opcode in ((0x81, Opcode.TEXT), (0x82, Opcode.BINARY)):
                payload = (b"a1" * (n // 2 + 1))[:n]
                wire = transport.render_frame(first, payload, masked)
                reader = StreamReader()
                reader.feed_data(wire)
                parser = Frame.parse(reader.read_exact, mask=masked, max_size=None)
                try:
                    next(parser)
                    raise AssertionError("the parser wants more bytes than the frame has")
                except StopIteration as done:
                    frame = done.value
                assert (frame.opcode, frame.fin, bytes(frame.data)) == (opcode, True, payload)
                assert not reader.buffer                       # nothing left over
    keys = {transport.render_frame(0x82, b"x" * 8, True)[2:6] for _ in range(2000)}
    assert len(keys) > 1990          # 32-bit random keys: a repeat in 2,000 is rare, none expected
