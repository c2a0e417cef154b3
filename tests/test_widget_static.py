"""The widget blueprint serves its files correctly; the JS parses; the capture resampler really filters.

The resampler test runs widget-worklet.js's Resampler under Node (the file exports it for exactly
this) and measures tones with numpy: a 1 kHz tone must pass 48 kHz -> 16 kHz unchanged, and a
12 kHz tone (above the 8 kHz output Nyquist) must be suppressed instead of folding to 4 kHz, which
is what naive decimation would do.
"""
from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
from quart_trio import QuartTrio

from control.api.widget import widget_bp
from conftest import require

STATIC = pathlib.Path(__file__).resolve().parent.parent / "control" / "static"


def _find_node() -> str | None:
    """System node, else the one Playwright for Python ships for its driver (a test dependency)."""
    found = shutil.which("node")
    if found:
        return found
    try:
        import playwright
    except ImportError:
        return None
    bundled = pathlib.Path(playwright.__file__).parent / "driver" / "node"
    return str(bundled) if bundled.is_file() else None


NODE = _find_node()


def make_app(**config) -> QuartTrio:
    app = QuartTrio(__name__)
    app.config.update(config)
    app.register_blueprint(widget_bp)
    return app


@pytest.mark.parametrize("path,name", [("/widget.js", "widget.js"),
                                       ("/widget-worklet.js", "widget-worklet.js")])
async def test_scripts_served_with_type_cache_and_cors(path, name):
    client = make_app().test_client()
    resp = await client.get(path)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "max-age=" in resp.headers["Cache-Control"]
    assert resp.headers["Access-Control-Allow-Origin"] == "*"   # worklet addModule is CORS-mode
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert await resp.get_data() == (STATIC / name).read_bytes()
    again = await client.get(path, headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304
    assert await again.get_data() == b""


async def test_demo_renders_target_from_query():
    client = make_app().test_client()
    resp = await client.get("/demo?agent=ag_123&gateway=ws://127.0.0.1:9999")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-store"
    html = (await resp.get_data()).decode()
    assert 'src="/widget.js"' in html
    assert 'data-gateway="ws://127.0.0.1:9999"' in html
    assert 'data-agent="ag_123"' in html
    # The copyable snippet, escaped once for the page: it shows exactly what embed_snippet returns.
    assert ('&lt;script src=&#34;http://localhost/widget.js&#34; data-gateway=&#34;ws://127.0.0.1:9999&#34; '
            'data-agent=&#34;ag_123&#34;&gt;&lt;/script&gt;') in html


def test_embed_snippet():
    from control.api.widget import embed_snippet
    assert embed_snippet("https://c.example/", "wss://g.example:8080/", "flow", "fl_1") == (
        '<script src="https://c.example/widget.js" data-gateway="wss://g.example:8080" '
        'data-flow="fl_1"></script>')
    assert "&quot;" in embed_snippet("https://c", "wss://g", "agent", 'x"y')
    with pytest.raises(ValueError):
        embed_snippet("https://c", "wss://g", "channel", "x")


async def test_demo_uses_configured_finder_and_gateway():
    async def finder():
        return ("flow", "fl_9")
    client = make_app(CONVERSE_DEMO_TARGET=finder,
                      CONVERSE_GATEWAY_PUBLIC_URL="wss://gw.example/").test_client()
    html = (await (await client.get("/demo")).get_data()).decode()
    assert 'data-flow="fl_9"' in html and 'data-gateway="wss://gw.example"' in html


async def test_demo_default_gateway_is_request_host_port_8080():
    client = make_app().test_client()
    resp = await client.get("/demo?agent=a1", headers={"Host": "localhost:8000"})
    assert 'data-gateway="ws://localhost:8080"' in (await resp.get_data()).decode()


async def test_demo_without_target_explains_itself():
    client = make_app().test_client()
    resp = await client.get("/demo")
    assert resp.status_code == 404
    assert "no active web channel" in (await resp.get_data()).decode()


@pytest.mark.parametrize("query", ["agent=%22%3E%3Cscript%3E", "flow=", "agent=a&gateway=javascript:alert(1)",
                                   "agent=a&gateway=ws://h/%22onload"])
async def test_demo_rejects_hostile_parameters(query):
    resp = await make_app().test_client().get("/demo?" + query)
    assert resp.status_code == 400
    body = await resp.get_json()
    assert body["error"]["message"]


@pytest.mark.parametrize("name", ["widget.js", "widget-worklet.js"])
def test_js_parses(name):
    require(NODE is not None, "no node (system or Playwright's) to syntax-check the widget")
    subprocess.run([NODE, "--check", str(STATIC / name)], check=True, timeout=30)


def _run_resampler(in_rate: int, out_rate: int, freq: float, seconds: float = 0.5) -> np.ndarray:
    """Feed a 0.5-amplitude tone through the JS resampler in 128-sample quanta; return its output."""
    script = f"""
    const {{Resampler}} = require({json.dumps(str(STATIC / "widget-worklet.js"))});
    const r = new Resampler({in_rate}, {out_rate});
    const n = Math.round({in_rate} * {seconds});
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = 0.5 * Math.sin(2 * Math.PI * {freq} * i / {in_rate});
    const out = [];
    for (let i = 0; i < n; i += 128) out.push(...r.process(x.subarray(i, i + 128)));
    process.stdout.write(JSON.stringify(out));
    """
    done = subprocess.run([NODE, "-e", script], check=True, timeout=60, capture_output=True)
    return np.array(json.loads(done.stdout))


def _tone_level(y: np.ndarray, rate: int, freq: float) -> float:
    """Amplitude of ``freq`` in the steady-state second half of ``y`` (windowed DFT bin)."""
    seg = y[len(y) // 2:]
    w = np.hanning(len(seg))
    t = np.arange(len(seg)) / rate
    return float(abs(np.sum(seg * w * np.exp(-2j * np.pi * freq * t))) * 2 / np.sum(w))


@pytest.mark.parametrize("in_rate", [48000, 44100])
def test_capture_resampler_passes_speech_and_blocks_aliases(in_rate):
    require(NODE is not None, "no node (system or Playwright's) to run the worklet's resampler")
    passed = _run_resampler(in_rate, 16000, 1000.0)
    assert len(passed) == pytest.approx(in_rate * 0.5 * 16000 / in_rate, abs=2)
    assert _tone_level(passed, 16000, 1000.0) == pytest.approx(0.5, rel=0.02)
    # 12 kHz would fold to 4 kHz under naive decimation; the low-pass must remove it (> 60 dB down).
    aliased = _run_resampler(in_rate, 16000, 12000.0)
    assert _tone_level(aliased, 16000, 4000.0) < 0.5e-3


def test_playback_resampler_upsamples_24k_cleanly():
    require(NODE is not None, "no node (system or Playwright's) to run the worklet's resampler")
    y = _run_resampler(24000, 48000, 1000.0)
    assert len(y) == pytest.approx(24000, abs=2)
    assert _tone_level(y, 48000, 1000.0) == pytest.approx(0.5, rel=0.02)
    # Upsampling images of a 1 kHz tone land at 23 kHz; the interpolation filter must remove them.
    assert _tone_level(y, 48000, 23000.0) < 0.5e-3


async def test_demo_through_the_control_app_finds_the_echo_web_channel(tmp_path):
    """The registered blueprint, in the real app factory over a real SQLite store."""
    from control.api import create_app
    from control.config import Settings
    from control.store import open_store, repo

    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
                                  "CONVERSE_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
                                  "GATEWAY_PUBLIC_URL": "ws://127.0.0.1:18080"})
    store = open_store(settings)
    try:
        def seed(tx):
            repo.insert_agent(tx, repo.AgentRow(id="ag_other", name="Other", kind="http",
                                                config={"url": "http://127.0.0.1:1/"}, created_at="1"))
            repo.insert_agent(tx, repo.AgentRow(id="ag_echo", name="Echo", kind="echo", created_at="2"))
            repo.insert_channel(tx, repo.ChannelRow(id="ch_http", name="w0", type="web", agent_id="ag_other",
                                                    status="active", created_at="1"))
            repo.insert_channel(tx, repo.ChannelRow(id="ch_off", name="w1", type="web", agent_id="ag_echo",
                                                    status="inactive", created_at="2"))
            repo.insert_channel(tx, repo.ChannelRow(id="ch_web", name="w2", type="web", agent_id="ag_echo",
                                                    status="active", created_at="3",
                                                    allowed_origins=["http://localhost:8000"]))
        store.run_sync(seed)
        client = create_app(settings, store).test_client()
        resp = await client.get("/demo")
        html = (await resp.get_data()).decode()
        assert resp.status_code == 200, html
        assert 'data-agent="ag_echo"' in html and 'data-gateway="ws://127.0.0.1:18080"' in html
        assert (await client.get("/widget.js")).status_code == 200
    finally:
        store.close()


# The worklet processors themselves, under Node with the few AudioWorkletGlobalScope names stubbed:
# deterministic checks of framing, the jitter buffer's prebuffer, underrun, clear and bound.
WORKLET_HARNESS = r"""
const processors = {};
globalThis.sampleRate = 48000;
globalThis.currentTime = 0;
globalThis.registerProcessor = (name, cls) => { processors[name] = cls; };
globalThis.AudioWorkletProcessor = class { constructor() { this.port = { posted: [], postMessage(m) { this.posted.push(m); } }; } };
require(process.argv[1]);
const out = {};

// Capture: 1 s of 48 kHz in 128-sample quanta -> 50 frames of 320 samples (640 bytes).
const cap = new processors["converse-capture"]({ processorOptions: {} });
const q = new Float32Array(128).fill(0.25);
for (let i = 0; i < 48000 / 128; i++) cap.process([[q]]);
out.capture_frames = cap.port.posted.length;
out.capture_frame_bytes = [...new Set(cap.port.posted.map((b) => b.byteLength))];
out.capture_last = new Int16Array(cap.port.posted[cap.port.posted.length - 1])[100];
cap.port.onmessage({ data: { type: "stop" } });
out.capture_after_stop = cap.process([[q]]);

// Playback at 48 kHz with an 80 ms prebuffer and a 1 s bound.
const pb = new processors["converse-playback"]({ processorOptions: { inRate: 24000, prebufferMs: 80, maxBufferMs: 1000 } });
const quantum = () => { const o = [new Float32Array(128)]; pb.process([], [o]); currentTime += 128 / 48000; return o[0]; };
const chunk = (ms, v) => new Int16Array(24 * ms).fill(v).buffer;
pb.port.onmessage({ data: chunk(40, 16384) });           // 40 ms: below the prebuffer
out.silent_before_prebuffer = quantum().every((x) => x === 0);
pb.port.onmessage({ data: chunk(60, 16384) });           // 100 ms queued: starts playing
quantum();
out.plays_after_prebuffer = Math.abs(quantum()[64] - 0.5) < 0.01;
for (let i = 0; i < 60; i++) quantum();                   // ~160 ms more: runs dry
out.underruns = pb.stats.underruns;
pb.port.onmessage({ data: chunk(500, 16384) });
quantum();
pb.port.onmessage({ data: { type: "clear" } });
out.silent_after_clear = quantum().every((x) => x === 0);
out.size_after_clear = pb.size;
pb.port.onmessage({ data: chunk(3000, 1000) });          // 3 s into a 1 s buffer: oldest dropped
out.size_bounded = pb.size;
out.dropped = pb.stats.dropped;
process.stdout.write(JSON.stringify(out));
"""


def test_worklet_processors_frame_buffer_and_clear():
    require(NODE is not None, "no node (system or Playwright's) to run the worklet processors")
    done = subprocess.run([NODE, "-e", WORKLET_HARNESS, str(STATIC / "widget-worklet.js")],
                          check=True, timeout=60, capture_output=True, text=True)
    out = json.loads(done.stdout)
    assert out["capture_frames"] == 50 and out["capture_frame_bytes"] == [640]
    assert out["capture_last"] == round(0.25 * 32767)       # DC passes the low-pass at unity gain
    assert out["capture_after_stop"] is False
    assert out["silent_before_prebuffer"] and out["plays_after_prebuffer"]
    assert out["underruns"] == 1
    assert out["silent_after_clear"] and out["size_after_clear"] == 0
    assert out["size_bounded"] == 48000 and out["dropped"] == 2 * 48000
