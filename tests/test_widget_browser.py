"""The widget in a real browser: headless Chromium speaks a WAV into /demo and hears it echoed back.

Chromium's fake capture device plays en_hello_48k.wav (padded with silence so the echo agent's
endpointer sees the utterance end) into getUserMedia. The page's widget downsamples it in the
AudioWorklet to 16 kHz, streams it to the gateway, and the echo agent plays the utterance back at
24 kHz. The test checks, without scraping pixels, that 24 kHz audio came back and that it *is* the
spoken sentence (cross-correlation against en_hello_24k.wav), that the echo agent's transcript is
shown, and that a chat message round-trips. The server side is `converse up` itself (control plane
and gateway in one process, seeded with its echo demo) on free ports with a throwaway store.

Also here: a refused origin and a token-URL session (REST session-url) in the browser, and the
widget's handling of clear/error/end/DTMF/odd-length frames against a scripted test-only peer.
Screenshots and the received audio land in test-artifacts/.
"""
from __future__ import annotations

import base64
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import types
import wave

import httpx
import numpy as np
import pytest

from conftest import ROOT, SHARED_AUDIO, require

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
PAD_SILENCE_S = 2.0
WAIT_MS = 45_000            # Playwright timeout for the voice round trip (a bound, not an assertion)


def _read_wav(path: pathlib.Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> pathlib.Path:
    """en_hello_48k.wav followed by silence: Chromium loops the file, and the endpointer needs a gap."""
    src = SHARED_AUDIO / "en_hello_48k.wav"
    require(src.exists(), f"speech fixture missing: {src}")
    rate, pcm = _read_wav(src)
    out = tmp_path_factory.mktemp("wav") / "hello_padded_48k.wav"
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes() + bytes(2 * int(rate * PAD_SILENCE_S)))
    return out


@pytest.fixture(scope="module")
def browser(speech_wav):
    require(os.path.exists(CHROMIUM), f"{CHROMIUM} not installed (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright (Python package) not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, timeout=60_000, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={speech_wav}",
        ])
        try:
            yield b
        finally:
            b.close()


def windowed_correlation(received: np.ndarray, reference: np.ndarray, rate: int = 24000,
                         win_s: float = 0.5, min_rms: float = 300.0) -> float:
    """Median, over the non-silent 0.5 s windows of ``received``, of each window's peak normalised
    cross-correlation with ``reference`` at any lag.

    Per-window rather than one global lag, so a dropped capture buffer on a loaded machine or an
    utterance split in two does not hide that every piece is the input speech. Measured: the echoed
    sentence scores ~0.8, white noise ~0.04, the same speech at the wrong rate (16 kHz played as
    24 kHz) ~0.15."""
    x = received.astype(np.float64)
    r = reference.astype(np.float64)
    w_len = int(rate * win_s)
    n = 1 << int(np.ceil(np.log2(len(r) + w_len)))
    spectrum = np.fft.rfft(r, n)
    energy = np.concatenate([[0.0], np.cumsum(r * r)])
    local = np.sqrt(energy[w_len:] - energy[:len(r) - w_len + 1])      # |r[lag:lag+W]| per lag
    scores = []
    for start in range(0, len(x) - w_len + 1, w_len):
        w = x[start:start + w_len] - x[start:start + w_len].mean()
        if np.sqrt(np.mean(w * w)) < min_rms:
            continue                                # silence matches nothing and proves nothing
        c = np.fft.irfft(np.conj(np.fft.rfft(w, n)) * spectrum, n)[:len(r) - w_len + 1]
        scores.append(float(np.max(np.abs(c) / (np.linalg.norm(w) * local + 1e-9))))
    return float(np.median(scores)) if scores else 0.0


COLLECT_AUDIO_JS = """() => {
  window.__rx = [];
  window.ConverseWidget.instance.on("audio", (pcm) => window.__rx.push(pcm));
}"""

RECEIVED_AUDIO_JS = """() => {
  const chunks = window.__rx, total = chunks.reduce((n, c) => n + c.length, 0);
  const all = new Int16Array(total);
  let o = 0; for (const c of chunks) { all.set(c, o); o += c.length; }
  const bytes = new Uint8Array(all.buffer); let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}"""


def test_demo_voice_and_chat_round_trip(browser, stack):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(stack.demo_url)
        page.evaluate(COLLECT_AUDIO_JS)
        # Keyboard-usable: focus the voice button and press Enter instead of clicking.
        start = page.get_by_role("button", name="Start voice")
        start.focus()
        page.keyboard.press("Enter")
        page.wait_for_function("window.converseWidgetStats.state === 'open'")
        assert page.get_by_role("button", name="Stop voice").is_visible()

        # The echo agent answers an utterance with a transcript and plays it back, paced in real
        # time; wait for 5 s of it (the sentence is 8.7 s) so the correlation below means something.
        page.wait_for_function(
            "() => { const s = window.converseWidgetStats;"
            " return s.transcripts_received >= 1 && s.bytes_received >= 2 * 24000 * 5; }",
            timeout=WAIT_MS)
        page.screenshot(path=str(ARTIFACTS / "widget-voice.png"))
        stats = page.evaluate("() => window.converseWidgetStats")
        assert stats["sample_rate"] == 24000, stats
        assert stats["frames_sent"] > 100 and stats["bytes_sent"] == 640 * stats["frames_sent"], stats
        assert page.locator("[data-cvw=transcript] li[data-role=assistant]").count() >= 1, stats
        assert stats["errors"] == 0, stats

        received = np.frombuffer(base64.b64decode(page.evaluate(RECEIVED_AUDIO_JS)), "<i2")
        with wave.open(str(ARTIFACTS / "widget-received-24k.wav"), "wb") as w:   # for a human to listen to
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(24000)
            w.writeframes(received.tobytes())
        ref_rate, reference = _read_wav(SHARED_AUDIO / "en_hello_24k.wav")
        assert ref_rate == 24000
        # Matching the 24 kHz reference sample-for-sample is what proves the rate: audio at any
        # other rate would be time-stretched against it and correlate poorly.
        corr = windowed_correlation(received, reference)
        print(f"received {len(received) / 24000:.2f} s of 24 kHz audio; correlation with the input speech {corr:.3f}")
        assert corr > 0.5, f"returned audio does not match the spoken input (correlation {corr:.3f})"

        # Chat round trip, keyboard only: type, press Enter.
        page.get_by_label("Message").fill("hello")
        page.get_by_label("Message").press("Enter")
        reply = page.locator("[data-cvw=transcript] li[data-role=assistant]", has_text="You said: hello")
        reply.wait_for(timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "widget-chat.png"))

        page.get_by_role("button", name="Stop voice").click()
        page.wait_for_function("window.converseWidgetStats.state === 'closed'")
        assert errors == [], errors
    finally:
        context.close()


def test_token_url_and_refused_origin(browser, stack):
    """A target whose channel does not allow this page's origin: the plain embed is refused (and the
    widget says so); a session URL from the operator's backend (data-token-url) gets in."""
    with stack.api() as api:
        agent_id = api.post("/api/v1/agents", json={"name": "echo2", "kind": "echo"}).json()["id"]
        ch = api.post("/api/v1/channels", json={"type": "web", "name": "elsewhere", "agent_id": agent_id,
                                                "allowed_origins": ["https://shop.example.com"]}).json()
        assert api.post(f"/api/v1/channels/{ch['id']}/activate").json()["status"] == "active"
        session = api.post(f"/api/v1/channels/{ch['id']}/session-url", json={})
        assert session.status_code == 200, session.text
        session_url = session.json()["url"]
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    # The operator's backend endpoint, played by Playwright: it hands out the signed session URL.
    token_requests = []

    def backend(route):
        token_requests.append(route.request.method)
        route.fulfill(json={"url": session_url, "expires_at": "later"})
    page.route("**/my-backend/converse-session", backend)
    try:
        page.goto(stack.control_url + "/demo")
        page.evaluate("""([gateway, agent]) => {
            for (const id of ["plain", "tokened"]) {
              const d = document.createElement("div"); d.id = id; document.body.appendChild(d);
            }
            window.plain = ConverseWidget.mount("#plain", {gateway, agent}, {title: "Plain"});
            window.tokened = ConverseWidget.mount("#tokened", {tokenUrl: "/my-backend/converse-session"},
                                                  {title: "Tokened"});
        }""", [stack.gateway_url, agent_id])
        plain = page.get_by_role("region", name="Plain")
        plain.get_by_label("Message").fill("hi")
        plain.get_by_label("Message").press("Enter")
        plain.get_by_role("alert").filter(has_text="Could not connect").wait_for()
        assert page.evaluate("window.plain.stats.state") == "error"

        # Two messages before the token request has answered: one token request, one connection.
        page.evaluate("() => { window.tokened.sendText('hi'); window.tokened.sendText('again'); }")
        tokened = page.get_by_role("region", name="Tokened")
        tokened.locator("li[data-role=assistant]", has_text="You said: hi").wait_for()
        tokened.locator("li[data-role=assistant]", has_text="You said: again").wait_for()
        assert token_requests == ["POST"]
        assert "token=" in page.evaluate("window.tokened.stats.ws_url")
        page.screenshot(path=str(ARTIFACTS / "widget-token.png"))
    finally:
        context.close()


# --- the widget against a scripted peer: clear, error, end, DTMF, odd-length binary frames ---------
TONE_S = 5.0


def _tone_24k() -> bytes:
    t = np.arange(int(24000 * TONE_S)) / 24000
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


class ScriptedPeer:
    """A test-only WebSocket peer that answers chat commands with protocol events."""

    def __init__(self):
        self.received: list = []
        self.tone = _tone_24k()

    def __call__(self, ws):
        ws.send(json.dumps({"type": "start", "session_id": "scripted", "audio": {"in_rate": 16000, "out_rate": 24000}}))
        for m in ws:
            msg = json.loads(m) if isinstance(m, str) else {"binary": len(m)}
            self.received.append(msg)
            text = msg.get("text")
            if msg.get("type") == "dtmf":
                self.say(ws, f"digit {msg['digit']}")
            elif text == "play":
                # 961 + 959 + ... bytes: one sample straddles two frames; the widget must rejoin it.
                ws.send(self.tone[:961])
                for i in range(961, len(self.tone), 960):
                    ws.send(self.tone[i:i + 960])
                self.say(ws, "played")
            elif text == "clear":
                ws.send(json.dumps({"type": "clear"}))
                self.say(ws, "cleared")
            elif text == "oops":
                ws.send(json.dumps({"type": "error", "code": "test", "message": "something broke"}))
            elif text == "bye":
                ws.send(json.dumps({"type": "end", "reason": "done"}))

    @staticmethod
    def say(ws, text):
        ws.send(json.dumps({"type": "transcript", "role": "assistant", "text": text}))


@pytest.fixture
def scripted_peer():
    from websockets.sync.server import serve
    peer = ScriptedPeer()
    port = _free_port()
    server = serve(peer, "127.0.0.1", port)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield peer, f"ws://127.0.0.1:{port}"
    finally:
        server.shutdown()
        t.join(10)


def _chat(page, text):
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()


def _assistant_line(page, text):
    return page.locator("[data-cvw=transcript] li[data-role=assistant]", has_text=text)


def test_widget_protocol_events(browser, stack, scripted_peer):
    peer, gateway = scripted_peer
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{stack.control_url}/demo?agent=scripted&gateway={gateway}&dtmf=1")
        page.evaluate(COLLECT_AUDIO_JS)

        _chat(page, "play")
        _assistant_line(page, "played").wait_for()
        stats = page.evaluate("() => window.converseWidgetStats")
        assert stats["bytes_received"] == len(peer.tone) and stats["sample_rate"] == 24000
        received = base64.b64decode(page.evaluate(RECEIVED_AUDIO_JS))
        assert received == peer.tone          # sample-exact despite the odd-length frames
        page.wait_for_function("window.converseWidgetStats.played_samples > 0")

        # Barge-in: everything still queued is dropped, not played.
        _chat(page, "clear")
        _assistant_line(page, "cleared").wait_for()
        page.wait_for_function("() => { const s = window.converseWidgetStats;"
                               " return s.player_clears === 1 && s.buffered_ms === 0; }")
        stats = page.evaluate("() => window.converseWidgetStats")
        assert stats["clears"] == 1
        assert stats["played_samples"] < 0.9 * TONE_S * stats["context_rate"]

        _chat(page, "oops")
        page.get_by_role("alert").filter(has_text="something broke").wait_for()

        keypad = page.get_by_role("group", name="Keypad")
        assert keypad.is_visible()
        keypad.get_by_role("button", name="Key 5").click()
        _assistant_line(page, "digit 5").wait_for()
        assert {"type": "dtmf", "digit": "5"} in peer.received
        assert {"type": "text", "text": "play"} in peer.received

        _chat(page, "bye")
        page.wait_for_function("window.converseWidgetStats.state === 'closed'")
        assert page.evaluate("window.converseWidgetStats.end_reason") == "done"
        page.get_by_role("status").filter(has_text="Conversation ended").wait_for()
        page.screenshot(path=str(ARTIFACTS / "widget-protocol.png"))
        assert errors == []
    finally:
        context.close()


# --- the stack: `converse up` itself (control + gateway in one process, seeded with an echo agent and
# an active web channel allowing http://localhost:PORT), on free ports with a throwaway SQLite store.
READY_DEADLINE_S = 60.0     # a cold start on a loaded 2-core box: a bound, not a measurement
STOP_DEADLINE_S = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _up_env(workdir: pathlib.Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CONVERSE_", "DATABASE_URL", "PUBLIC_URL", "GATEWAY_PUBLIC_URL", "CONTROL_"))}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite:///{workdir / 'converse.db'}",
               CONVERSE_SECRET_KEY_FILE=str(workdir / "secret.key"), CONVERSE_LOG_LEVEL="INFO")
    return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("up")
    control_port, gateway_port = _free_port(), _free_port()
    out_path, log_path = workdir / "stdout.txt", workdir / "up.log"
    with open(out_path, "wb") as out, open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "control.cli", "up", "--port", str(control_port),
                                 "--gateway-port", str(gateway_port)],
                                # session-url answers with GATEWAY_PUBLIC_URL (else ws://localhost:8080)
                                env=dict(_up_env(workdir), GATEWAY_PUBLIC_URL=f"ws://localhost:{gateway_port}"),
                                cwd=workdir, stdout=out, stderr=log)
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while not (_listening(control_port) and _listening(gateway_port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"converse up did not start (exit {proc.poll()}):\n{log_path.read_text()}")
            time.sleep(0.05)
        printed = out_path.read_text()
        demo_url = next(line.split(" ", 1)[1] for line in printed.splitlines() if line.startswith("Demo: "))
        api_key = next(line for line in printed.splitlines() if line.startswith("cvk_"))
        assert demo_url == f"http://localhost:{control_port}/demo", printed
        control_url = f"http://localhost:{control_port}"

        def api() -> httpx.Client:
            return httpx.Client(base_url=control_url, timeout=30, headers={"Authorization": f"Bearer {api_key}"})

        yield types.SimpleNamespace(control_url=control_url, demo_url=demo_url, api=api,
                                    gateway_url=f"ws://localhost:{gateway_port}", log=log_path)
    finally:
        proc.terminate()                      # SIGTERM: converse up stops both planes gracefully
        try:
            proc.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_DEADLINE_S)
