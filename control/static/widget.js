/* Converse Gateway web widget: voice + chat in one small panel. Vanilla JS, no build step.
 *
 * Embed (auto-mounts right after the script tag, or into data-target="#css-selector"):
 *   <script src="https://HOST/widget.js" data-gateway="wss://HOST:8080" data-agent="AGENT_ID"></script>
 *   data-flow="FLOW_ID"      instead of data-agent: talk to a flow
 *   data-url="wss://..."     a complete session URL instead of gateway + agent/flow
 *   data-token-url="/my/session"  POSTed before each connection; answers {"url": "..."} or {"token": "..."}
 *   data-dtmf="true"         show the keypad         data-title="..."  panel heading
 *
 * Programmatic:
 *   const w = ConverseWidget.mount(element, {gateway, agent | flow} | {url}, {token, tokenUrl, ...});
 *   w.startVoice(); w.stopVoice(); w.sendText("hi"); w.sendDtmf("5"); w.close(); w.stats
 *
 * Wire protocol (DESIGN.md): binary up = PCM16LE mono 16 kHz in 20 ms frames, binary down = PCM16LE
 * mono 24 kHz, JSON text frames {type: text|transcript|dtmf|clear|mark|start|end|error}.
 * window.converseWidgetStats mirrors the stats of the most recently mounted widget (for tests).
 */
(function () {
  "use strict";

  var VERSION = "0.1.0";
  var UP_RATE = 16000;
  var DOWN_RATE = 24000;
  var script = document.currentScript;
  var scriptSrc = script && script.src ? script.src : "";

  function workletUrlFor(src) {
    if (!src) return "/widget-worklet.js";
    return src.replace(/widget(\.min)?\.js(\?.*)?$/, "widget-worklet.js");
  }

  var CSS =
    ".cvw{font:14px/1.4 system-ui,sans-serif;color:#1b1f24;background:#fff;border:1px solid #c9d1d9;" +
    "border-radius:10px;padding:12px;max-width:360px;box-shadow:0 2px 8px rgba(0,0,0,.08)}" +
    ".cvw h2{font-size:15px;margin:0 0 8px}" +
    ".cvw button{font:inherit;padding:6px 12px;border-radius:6px;border:1px solid #8c959f;background:#f6f8fa;cursor:pointer}" +
    ".cvw button:focus-visible,.cvw input:focus-visible{outline:2px solid #0969da;outline-offset:2px}" +
    ".cvw button[data-active=true]{background:#cf222e;color:#fff;border-color:#a40e26}" +
    ".cvw-row{display:flex;gap:6px;align-items:center;margin:6px 0}" +
    ".cvw-status{color:#57606a;font-size:12px}" +
    ".cvw-log{list-style:none;margin:8px 0;padding:6px;height:180px;overflow-y:auto;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa}" +
    ".cvw-log li{margin:3px 0;word-wrap:break-word}" +
    ".cvw-log .cvw-user b{color:#0969da}.cvw-log .cvw-assistant b{color:#1a7f37}.cvw-log .cvw-system{color:#57606a;font-style:italic}" +
    ".cvw-error{color:#cf222e;font-size:13px;min-height:1em}" +
    ".cvw input[type=text]{flex:1;font:inherit;padding:6px;border:1px solid #8c959f;border-radius:6px}" +
    ".cvw-keypad{display:grid;grid-template-columns:repeat(3,1fr);gap:4px;margin-top:6px}" +
    ".cvw [hidden]{display:none!important}" +
    ".cvw-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}";

  var cssInjected = false;
  function injectCss() {
    if (cssInjected) return;
    cssInjected = true;
    var style = document.createElement("style");
    style.setAttribute("data-converse-widget", "");
    style.textContent = CSS;
    (document.head || document.documentElement).appendChild(style);
  }

  var uid = 0;
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }

  function buildSessionUrl(target) {
    if (target.url) return target.url;
    if (!target.gateway) throw new Error("widget needs data-url, or data-gateway with data-agent or data-flow");
    var base = String(target.gateway).replace(/\/+$/, "").replace(/^http(s?):/, "ws$1:");
    if (target.agent) return base + "/ws/agent/" + encodeURIComponent(target.agent);
    if (target.flow) return base + "/ws/flow/" + encodeURIComponent(target.flow);
    throw new Error("widget needs data-agent or data-flow");
  }

  function withToken(url, token) {
    if (!token) return url;
    return url + (url.indexOf("?") >= 0 ? "&" : "?") + "token=" + encodeURIComponent(token);
  }

  function Widget(container, target, options) {
    this.target = target;
    this.opts = options || {};
    this.ws = null;
    this.state = "idle";           // idle | connecting | open | closed | error
    this.voice = false;
    this.ctx = null;
    this.mic = null;
    this.captureNode = null;
    this.playbackNode = null;
    this.sourceNode = null;
    this.workletReady = null;
    this.pendingText = [];         // chat typed before the socket opened
    this.carry = null;             // odd trailing byte of a binary frame
    this.localEcho = [];           // chat lines shown locally, to de-duplicate user transcripts
    this.listeners = {};           // name -> [fn]: "audio" (Int16Array, 24 kHz), "event" (JSON), "state"
    this.stats = {
      state: "idle", ws_url: null, sample_rate: DOWN_RATE, context_rate: 0,
      bytes_received: 0, frames_received: 0, bytes_sent: 0, frames_sent: 0, frames_dropped: 0,
      transcripts_received: 0, last_transcript: null, texts_sent: 0,
      errors: 0, last_error: null, clears: 0, marks: 0, end_reason: null,
      played_samples: 0, underruns: 0, dropped_samples: 0, buffered_ms: 0, player_clears: 0,
      close_code: null, session: null, version: VERSION,
    };
    this._build(container);
    window.converseWidgetStats = this.stats;
  }

  Widget.prototype._build = function (container) {
    injectCss();
    var id = "cvw" + (++uid);
    var root = el("section", { "class": "cvw", "aria-labelledby": id + "-title" });
    root.appendChild(el("h2", { id: id + "-title" }, this.opts.title || "Talk to us"));
    var status = el("div", { "class": "cvw-status", role: "status", "aria-live": "polite" }, "Not connected");
    var row = el("div", { "class": "cvw-row" });
    // The label itself says what a press does (Start/Stop), so no aria-pressed on top of it.
    var voiceBtn = el("button", { type: "button", "data-cvw": "voice", "data-active": "false" }, "Start voice");
    row.appendChild(voiceBtn);
    var log = el("ul", { "class": "cvw-log", role: "log", "aria-live": "polite", "aria-label": "Conversation transcript",
      tabindex: "0", "data-cvw": "transcript" });
    var error = el("div", { "class": "cvw-error", role: "alert", "data-cvw": "error" });
    var form = el("form", { "class": "cvw-row", "data-cvw": "chat" });
    var label = el("label", { "for": id + "-input", "class": "cvw-sr" }, "Message");
    var input = el("input", { id: id + "-input", type: "text", autocomplete: "off", maxlength: "2000",
      placeholder: "Type a message" });
    var send = el("button", { type: "submit" }, "Send");
    form.appendChild(label); form.appendChild(input); form.appendChild(send);
    root.appendChild(row); root.appendChild(status); root.appendChild(log); root.appendChild(error);
    root.appendChild(form);

    var keypad = el("div", { "class": "cvw-keypad", role: "group", "aria-label": "Keypad", "data-cvw": "keypad" });
    var self = this;
    "123456789*0#".split("").forEach(function (d) {
      var b = el("button", { type: "button", "aria-label": "Key " + d }, d);
      b.addEventListener("click", function () { self.sendDtmf(d); });
      keypad.appendChild(b);
    });
    keypad.hidden = !this.opts.dtmf;
    root.appendChild(keypad);

    voiceBtn.addEventListener("click", function () {
      if (self.voice) self.stopVoice(); else self.startVoice();
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var text = input.value.trim();
      if (!text) return;
      input.value = "";
      self.sendText(text);
    });
    container.appendChild(root);
    this.ui = { root: root, status: status, voiceBtn: voiceBtn, log: log, error: error, input: input, keypad: keypad };
  };

  Widget.prototype._setState = function (state, message) {
    var changed = this.state !== state;
    this.state = state;
    this.stats.state = state;
    if (message) this.ui.status.textContent = message;
    if (changed) this._emit("state", state);
  };

  /* Subscribe to "audio" (each received chunk as an Int16Array at stats.sample_rate), "event" (each
   * JSON event object) or "state" (idle|connecting|open|closed|error). Returns an unsubscribe function. */
  Widget.prototype.on = function (name, fn) {
    var list = this.listeners[name] || (this.listeners[name] = []);
    list.push(fn);
    return function () { var i = list.indexOf(fn); if (i >= 0) list.splice(i, 1); };
  };

  Widget.prototype._emit = function (name, value) {
    var list = this.listeners[name];
    if (!list) return;
    for (var i = 0; i < list.length; i++) {
      try { list[i](value); } catch (e) { if (window.console) console.error(e); }  // a bad listener must not break audio
    }
  };

  Widget.prototype._append = function (kind, who, text) {
    var li = el("li", { "class": "cvw-" + kind, "data-role": kind });
    if (who) { li.appendChild(el("b", {}, who + ": ")); }
    li.appendChild(document.createTextNode(text));
    this.ui.log.appendChild(li);
    this.ui.log.scrollTop = this.ui.log.scrollHeight;
  };

  Widget.prototype._showError = function (text) {
    this.stats.errors++;
    this.stats.last_error = text;
    this.ui.error.textContent = text;
  };

  /* Resolve the session URL (fetching a token if configured) and open the socket once. */
  Widget.prototype.connect = function () {
    var self = this;
    // Idempotent: also while a token request is in flight (no socket yet) or the socket opens.
    if (this.state === "connecting" && this._opened) return this._opened;
    if (this.ws && (this.ws.readyState === 0 || this.ws.readyState === 1)) return this._opened;
    this._setState("connecting", "Connecting…");
    this.ui.error.textContent = "";
    this.carry = null;
    this._opened = this._resolveUrl().then(function (url) {
      return new Promise(function (resolve, reject) {
        var ws;
        try { ws = new WebSocket(url); } catch (e) { reject(e); return; }
        ws.binaryType = "arraybuffer";
        self.ws = ws;
        self.stats.ws_url = url.replace(/token=[^&]*/, "token=…");
        ws.onopen = function () {
          self._setState("open", "Connected");
          var queued = self.pendingText; self.pendingText = [];
          queued.forEach(function (m) { self._sendJson(m); });
          resolve();
        };
        ws.onmessage = function (e) { self._onMessage(e.data); };
        ws.onerror = function () { /* the close event that follows carries what we know */ };
        ws.onclose = function (e) {
          var wasOpen = self.state === "open";
          self.stats.close_code = e.code;
          if (self.ws === ws) self.ws = null;
          self._teardownAudio();
          if (self.state === "closed") { resolve(); return; }  // an `end` event already explained it
          if (!wasOpen) {
            self.pendingText = [];
            self._setState("error", "Not connected");
            self._showError("Could not connect to the gateway" + (e.reason ? ": " + e.reason : "") + ".");
            reject(new Error("connection failed"));
          } else if (e.code === 1000 || e.code === 1001) {
            self._setState("closed", "Conversation ended");
          } else {
            self._setState("error", "Disconnected");
            self._showError("Connection lost (" + e.code + (e.reason ? ": " + e.reason : "") + ").");
          }
        };
      });
    });
    this._opened.catch(function (e) {
      if (self.state === "connecting") { self._setState("error", "Not connected"); self._showError(String(e.message || e)); }
    });
    return this._opened;
  };

  Widget.prototype._resolveUrl = function () {
    var target = this.target, opts = this.opts;
    var url;
    try { url = buildSessionUrl(target); } catch (e) { if (!opts.tokenUrl) return Promise.reject(e); }
    if (!opts.tokenUrl) return Promise.resolve(withToken(url, opts.token));
    return fetch(opts.tokenUrl, { method: "POST", credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("token request failed (" + r.status + ")");
        return r.json();
      })
      .then(function (body) {
        if (body && typeof body.url === "string") return body.url;
        if (body && typeof body.token === "string" && url) return withToken(url, body.token);
        throw new Error("token endpoint answered without a url or token");
      });
  };

  Widget.prototype._sendJson = function (msg) {
    if (!this.ws || this.ws.readyState !== 1) { this.pendingText.push(msg); return false; }
    this.ws.send(JSON.stringify(msg));
    return true;
  };

  Widget.prototype.sendText = function (text) {
    text = String(text);
    this._append("user", "You", text);
    this.localEcho.push(text);
    if (this.localEcho.length > 20) this.localEcho.shift();
    this.stats.texts_sent++;
    // A reply may carry speech: create the audio context inside this user gesture.
    this._ensureAudio().catch(function () {});
    this._sendJson({ type: "text", text: text });
    this.connect();
  };

  Widget.prototype.sendDtmf = function (digit) {
    if (!/^[0-9*#A-D]$/.test(digit)) return;
    this._sendJson({ type: "dtmf", digit: digit });
    this.connect();
  };

  Widget.prototype._onMessage = function (data) {
    if (typeof data === "string") { this._onEvent(data); return; }
    var bytes = new Uint8Array(data);
    this.stats.bytes_received += bytes.length;
    this.stats.frames_received++;
    if (this.carry) {                       // a sample split across frames
      var joined = new Uint8Array(bytes.length + 1);
      joined[0] = this.carry[0]; joined.set(bytes, 1); bytes = joined; this.carry = null;
    }
    if (bytes.length & 1) { this.carry = bytes.slice(bytes.length - 1); bytes = bytes.subarray(0, bytes.length - 1); }
    if (!bytes.length) return;
    var pcm = new Int16Array(bytes.length / 2);
    new Uint8Array(pcm.buffer).set(bytes);  // copy: the view may be unaligned; PCM16LE on LE hosts
    if (this.listeners.audio) this._emit("audio", pcm.slice());
    if (this.playbackNode) this.playbackNode.port.postMessage(pcm.buffer, [pcm.buffer]);
  };

  Widget.prototype._onEvent = function (text) {
    var msg;
    try { msg = JSON.parse(text); } catch (e) { this._showError("The gateway sent something unreadable."); return; }
    if (!msg || typeof msg !== "object") return;
    this._emit("event", msg);
    switch (msg.type) {
      case "transcript":
        if (typeof msg.text !== "string") return;
        this.stats.transcripts_received++;
        this.stats.last_transcript = msg.text;
        if (msg.role === "user") {
          var i = this.localEcho.indexOf(msg.text);
          if (i >= 0) { this.localEcho.splice(i, 1); return; }  // already shown when typed
          this._append("user", "You", msg.text);
        } else {
          this._append("assistant", this.opts.agentLabel || "Agent", msg.text);
        }
        break;
      case "clear":
        this.stats.clears++;
        if (this.playbackNode) this.playbackNode.port.postMessage({ type: "clear" });
        break;
      case "mark":
        this.stats.marks++;                 // the gateway tracks marks; the widget only plays
        break;
      case "start":
        this.stats.session = msg.session_id || msg.session || null;
        var rate = msg.audio && (msg.audio.out_rate || msg.audio.down_rate || msg.audio.output_rate);
        if (typeof rate === "number" && rate > 0) {
          this.stats.sample_rate = rate;
          if (this.playbackNode) this.playbackNode.port.postMessage({ type: "rate", inRate: rate });
        }
        break;
      case "error":
        this._showError((msg.message || msg.code || "error") + "");
        this._append("system", null, "Error: " + (msg.message || msg.code || "unknown"));
        break;
      case "end":
        this.stats.end_reason = msg.reason || null;
        this._setState("closed", "Conversation ended" + (msg.reason ? " (" + msg.reason + ")" : ""));
        this._append("system", null, "Conversation ended.");
        this._teardownAudio();
        if (this.ws) this.ws.close(1000, "end");
        break;
      default:
        break;                              // tolerate events newer than this widget
    }
  };

  /* AudioContext + worklet module, created once inside a user gesture. */
  Widget.prototype._ensureAudio = function () {
    var self = this;
    if (this.workletReady) {
      if (this.ctx && this.ctx.state === "suspended") this.ctx.resume();
      return this.workletReady;
    }
    var AC = window.AudioContext || window.webkitAudioContext;
    if (!AC || !window.AudioWorkletNode) return Promise.reject(new Error("this browser cannot play audio here (AudioWorklet missing; is the page served over HTTPS?)"));
    this.ctx = new AC({ latencyHint: "interactive" });
    this.stats.context_rate = this.ctx.sampleRate;
    this.workletReady = this.ctx.audioWorklet.addModule(this.opts.workletUrl || workletUrlFor(scriptSrc))
      .then(function () { self._startPlayback(); });
    this.workletReady.catch(function (e) { self.workletReady = null; self._showError("Audio unavailable: " + (e.message || e)); });
    return this.workletReady;
  };

  Widget.prototype._startPlayback = function () {
    var self = this;
    if (this.playbackNode) return;
    this.playbackNode = new AudioWorkletNode(this.ctx, "converse-playback", {
      numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
      processorOptions: { inRate: this.stats.sample_rate, prebufferMs: this.opts.jitterMs || 80 },
    });
    this.playbackNode.port.onmessage = function (e) {
      var s = e.data;
      if (!s || s.type !== "stats") return;
      self.stats.played_samples = s.played; self.stats.underruns = s.underruns;
      self.stats.dropped_samples = s.dropped; self.stats.buffered_ms = s.buffered_ms;
      self.stats.player_clears = s.cleared;
    };
    this.playbackNode.connect(this.ctx.destination);
  };

  Widget.prototype.startVoice = function () {
    var self = this;
    if (this.voice) return Promise.resolve();
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this._showError("Microphone unavailable (the page must be served over HTTPS).");
      return Promise.resolve();
    }
    this.voice = true;
    this._voiceUi(true);
    var audio = this._ensureAudio();        // still inside the click: allowed to start audio
    var mic = navigator.mediaDevices.getUserMedia({ audio: {
      channelCount: 1,
      echoCancellation: this.opts.echoCancellation !== false,
      noiseSuppression: this.opts.noiseSuppression !== false,
      autoGainControl: this.opts.autoGainControl !== false,
    } });
    return Promise.all([audio, mic, this.connect()]).then(function (r) {
      var stream = r[1];
      if (!self.voice) { stream.getTracks().forEach(function (t) { t.stop(); }); return; }  // stopped meanwhile
      self.mic = stream;
      self.sourceNode = self.ctx.createMediaStreamSource(stream);
      self.captureNode = new AudioWorkletNode(self.ctx, "converse-capture", {
        numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: "explicit",
        processorOptions: { outRate: UP_RATE },
      });
      self.captureNode.port.onmessage = function (e) {
        var ws = self.ws;
        if (!ws || ws.readyState !== 1) return;
        // Don't let a stalled network grow the browser's send queue without bound.
        if (ws.bufferedAmount > 64000) { self.stats.frames_dropped++; return; }
        ws.send(e.data);
        self.stats.frames_sent++;
        self.stats.bytes_sent += e.data.byteLength;
      };
      self.sourceNode.connect(self.captureNode);
      self._setState(self.state, "Listening…");
    }).catch(function (e) {
      self.stopVoice();
      if (e && e.name === "NotAllowedError") self._showError("Microphone permission was denied.");
      else if (self.state !== "error") self._showError("Could not start voice: " + (e && e.message || e));
    });
  };

  Widget.prototype._voiceUi = function (on) {
    this.ui.voiceBtn.setAttribute("data-active", on ? "true" : "false");
    this.ui.voiceBtn.textContent = on ? "Stop voice" : "Start voice";
  };

  /* Stop the microphone and playback and end the conversation (chat reconnects on demand). */
  Widget.prototype.stopVoice = function () {
    this.voice = false;
    this._voiceUi(false);
    this._teardownAudio();
    if (this.playbackNode) this.playbackNode.port.postMessage({ type: "clear" });  // the caller hung up
    if (this.ws && this.ws.readyState <= 1) this.ws.close(1000, "caller stopped");
    if (this.state === "open" || this.state === "connecting") this._setState("closed", "Conversation ended");
  };

  /* Release the microphone. Queued speech keeps playing (a goodbye before `end` is heard out). */
  Widget.prototype._teardownAudio = function () {
    if (this.captureNode) { this.captureNode.port.postMessage({ type: "stop" }); this.captureNode.disconnect(); this.captureNode = null; }
    if (this.sourceNode) { this.sourceNode.disconnect(); this.sourceNode = null; }
    if (this.mic) { this.mic.getTracks().forEach(function (t) { t.stop(); }); this.mic = null; }
    if (this.voice) { this.voice = false; this._voiceUi(false); }
  };

  Widget.prototype.close = function () {
    this.stopVoice();
    if (this.ctx) { this.ctx.close(); this.ctx = null; this.playbackNode = null; this.workletReady = null; }
  };

  function mount(container, target, options) {
    if (typeof container === "string") container = document.querySelector(container);
    if (!container) throw new Error("ConverseWidget.mount: container element not found");
    target = target || {};
    options = options || {};
    // Accept one merged object too: mount(el, {gateway, agent, token, ...}).
    ["token", "tokenUrl", "dtmf", "title", "workletUrl", "jitterMs", "agentLabel",
      "echoCancellation", "noiseSuppression", "autoGainControl"].forEach(function (k) {
      if (options[k] === undefined && target[k] !== undefined) options[k] = target[k];
    });
    var w = new Widget(container, target, options);
    window.ConverseWidget.instance = w;
    return w;
  }

  function autoMount() {
    if (!script) return;
    var d = script.dataset;
    if (!d.url && !d.gateway && !d.tokenUrl) return;  // loaded only for the JS API
    var container;
    if (d.target) container = document.querySelector(d.target);
    if (!container) {
      container = document.createElement("div");
      script.parentNode.insertBefore(container, script.nextSibling);
    }
    mount(container, { url: d.url, gateway: d.gateway, agent: d.agent, flow: d.flow }, {
      tokenUrl: d.tokenUrl, dtmf: d.dtmf === "true", title: d.title,
    });
  }

  window.ConverseWidget = { mount: mount, version: VERSION, instance: null };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", autoMount);
  else autoMount();
})();
