/* Converse widget audio worklet: microphone capture (context rate -> 16 kHz PCM16, 20 ms frames)
 * and playback (24 kHz PCM16 -> context rate, small jitter buffer, instant flush on "clear").
 *
 * Loaded with audioContext.audioWorklet.addModule(".../widget-worklet.js"). The resampler is also
 * exported for Node (module.exports) so tests can measure its frequency response without a browser.
 */
"use strict";

function gcd(a, b) {
  while (b) { const t = a % b; a = b; b = t; }
  return a;
}

function besselI0(x) {
  // Power series; converges fast for the beta values a Kaiser window uses.
  let sum = 1, term = 1;
  for (let k = 1; k < 50; k++) {
    term *= (x / (2 * k)) * (x / (2 * k));
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

/* Streaming rational resampler (polyphase windowed-sinc, Kaiser window).
 *
 * The prototype low-pass runs at inRate*L; its cutoff sits below the lower of the two Nyquist
 * frequencies, so downsampling 48 kHz -> 16 kHz removes everything above ~7.2 kHz before it can
 * alias (naive decimation would fold 8-24 kHz back into the speech band). Each output sample costs
 * `taps` multiply-adds against one phase of the filter; state is the last taps-1 input samples.
 */
class Resampler {
  constructor(inRate, outRate, opts) {
    opts = opts || {};
    if (!(inRate > 0 && outRate > 0)) throw new RangeError("sample rates must be positive");
    inRate = Math.round(inRate);
    outRate = Math.round(outRate);
    let g = gcd(inRate, outRate);
    // Unusual rates give huge phase counts; snapping the input rate to 100 Hz keeps the table small
    // at the cost of an inaudible pitch error.
    if (outRate / g > 4096) { inRate = Math.round(inRate / 100) * 100; g = gcd(inRate, outRate); }
    this.inRate = inRate;
    this.outRate = outRate;
    this.L = outRate / g;                 // upsampling factor
    this.M = inRate / g;                  // downsampling factor
    const rolloff = opts.rolloff || 0.9;  // passband edge as a fraction of the lower Nyquist
    const zeros = opts.zeroCrossings || 12;
    const beta = opts.beta || 8.0;        // Kaiser beta: ~80 dB stopband
    const fsUp = inRate * this.L;
    const fc = 0.5 * Math.min(inRate, outRate) * rolloff;
    const norm = 2 * fc / fsUp;           // cutoff, in cycles per upsampled sample, times 2
    const protoLen = Math.ceil(2 * zeros / norm);
    this.taps = Math.max(1, Math.ceil(protoLen / this.L));
    const n = this.taps * this.L;
    const centre = (n - 1) / 2;
    const i0beta = besselI0(beta);
    const proto = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const t = i - centre;
      const x = norm * t;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const r = t / (centre + 0.5);
      const w = besselI0(beta * Math.sqrt(Math.max(0, 1 - r * r))) / i0beta;
      proto[i] = this.L * norm * sinc * w;
    }
    // Phase-major table: phase p, tap j = proto[p + j*L], so one output reads `taps` contiguous floats.
    this.table = new Float32Array(n);
    for (let p = 0; p < this.L; p++) {
      for (let j = 0; j < this.taps; j++) this.table[p * this.taps + j] = proto[p + j * this.L];
    }
    this.bufCap = 0;
    this.buf = new Float32Array(0);
    this.reset();
  }

  reset() {
    this.len = this.taps - 1;             // history starts as silence
    this._ensure(this.len + 1024);
    this.buf.fill(0);
    this.acc = (this.taps - 1) * this.L;  // position of the next output, in 1/L input samples
  }

  _ensure(cap) {
    if (cap <= this.bufCap) return;
    const nb = new Float32Array(Math.max(cap, this.bufCap * 2));
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
    this.bufCap = nb.length;
  }

  /* Upper bound of outputs for `count` more inputs (to size output arrays). */
  maxOutput(count) {
    return Math.ceil(((this.len + count) * this.L - this.acc) / this.M) + 1;
  }

  /* Feed Float32 samples (or anything indexable), get a Float32Array of resampled output. */
  process(input, scale) {
    scale = scale || 1;
    const count = input.length;
    this._ensure(this.len + count);
    const buf = this.buf;
    for (let i = 0; i < count; i++) buf[this.len + i] = input[i] * scale;
    this.len += count;
    const out = new Float32Array(Math.max(0, this.maxOutput(0)));
    const L = this.L, M = this.M, taps = this.taps, table = this.table;
    let acc = this.acc, k = 0;
    for (;;) {
      const nIdx = Math.floor(acc / L);
      if (nIdx >= this.len) break;
      const p = acc - nIdx * L;
      // Newest contributing sample is buf[nIdx]; the tap order matches the reversed phase table.
      let s = 0, base = p * taps;
      for (let j = 0; j < taps; j++) s += table[base + j] * buf[nIdx - j];
      out[k++] = s;
      acc += M;
    }
    // Keep only the history the next call needs.
    const keep = taps - 1;
    const drop = this.len - keep;
    if (drop > 0) {
      buf.copyWithin(0, drop, this.len);
      this.len = keep;
      acc -= drop * L;
    }
    this.acc = acc;
    return out.subarray(0, k);
  }
}

function floatToInt16(x) {
  const v = Math.round(x * 32767);
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}

if (typeof registerProcessor === "function") {
  const FRAME_SAMPLES = 320;               // 20 ms at 16 kHz = 640 bytes

  /* Microphone -> 16 kHz Int16 frames posted to the main thread as transferable ArrayBuffers. */
  class CaptureProcessor extends AudioWorkletProcessor {
    constructor(options) {
      super();
      const o = (options && options.processorOptions) || {};
      this.outRate = o.outRate || 16000;
      this.frameSamples = o.frameSamples || FRAME_SAMPLES;
      this.resampler = new Resampler(sampleRate, this.outRate);
      this.frame = new Int16Array(this.frameSamples);
      this.fill = 0;
      this.running = true;
      this.port.onmessage = (e) => { if (e.data && e.data.type === "stop") this.running = false; };
    }

    process(inputs) {
      if (!this.running) return false;
      const input = inputs[0];
      if (!input || input.length === 0) return true;  // no track yet
      let mono = input[0];
      if (input.length > 1) {                          // downmix
        mono = new Float32Array(input[0].length);
        for (let c = 0; c < input.length; c++) {
          const ch = input[c];
          for (let i = 0; i < ch.length; i++) mono[i] += ch[i] / input.length;
        }
      }
      const out = this.resampler.process(mono);
      for (let i = 0; i < out.length; i++) {
        this.frame[this.fill++] = floatToInt16(out[i]);
        if (this.fill === this.frameSamples) {
          const buf = this.frame.buffer;
          this.port.postMessage(buf, [buf]);
          this.frame = new Int16Array(this.frameSamples);
          this.fill = 0;
        }
      }
      return true;
    }
  }

  /* 24 kHz Int16 chunks from the main thread -> speakers, through a jitter buffer.
   *
   * Playback waits until `prebufferMs` of audio is queued (absorbing network jitter), then plays
   * continuously; an underrun goes back to waiting. {type:"clear"} drops everything queued and
   * resets the resampler, so barge-in is immediate.
   */
  class PlaybackProcessor extends AudioWorkletProcessor {
    constructor(options) {
      super();
      const o = (options && options.processorOptions) || {};
      this.inRate = o.inRate || 24000;
      this.prebuffer = Math.round(sampleRate * (o.prebufferMs || 80) / 1000);
      const maxMs = o.maxBufferMs || 20000;             // bounded: drop oldest beyond this
      this.cap = Math.round(sampleRate * maxMs / 1000);
      this.ring = new Float32Array(this.cap);
      this.read = 0;
      this.size = 0;
      this.playing = false;
      this.resampler = new Resampler(this.inRate, sampleRate);
      this.stats = { played: 0, underruns: 0, dropped: 0, cleared: 0 };
      this.lastReport = 0;
      this.port.onmessage = (e) => this.onMessage(e.data);
    }

    onMessage(msg) {
      if (msg instanceof ArrayBuffer || ArrayBuffer.isView(msg)) {
        const pcm = msg instanceof ArrayBuffer ? new Int16Array(msg) : msg;
        this.push(this.resampler.process(pcm, 1 / 32768));
      } else if (msg && msg.type === "clear") {
        this.size = 0;
        this.read = 0;
        this.playing = false;
        this.resampler.reset();
        this.stats.cleared++;
        this.report(true);
      } else if (msg && msg.type === "rate" && msg.inRate > 0 && msg.inRate !== this.inRate) {
        this.inRate = msg.inRate;
        this.resampler = new Resampler(this.inRate, sampleRate);
      }
    }

    push(samples) {
      let n = samples.length;
      let src = samples;
      if (n > this.cap) { src = samples.subarray(n - this.cap); this.stats.dropped += n - this.cap; n = this.cap; }
      const overflow = this.size + n - this.cap;
      if (overflow > 0) {                                // drop oldest, counted
        this.read = (this.read + overflow) % this.cap;
        this.size -= overflow;
        this.stats.dropped += overflow;
      }
      let w = (this.read + this.size) % this.cap;
      for (let i = 0; i < n; i++) {
        this.ring[w] = src[i];
        w = w + 1 === this.cap ? 0 : w + 1;
      }
      this.size += n;
    }

    process(inputs, outputs) {
      const out = outputs[0];
      const ch0 = out[0];
      const frames = ch0.length;
      if (!this.playing && this.size >= this.prebuffer) this.playing = true;
      if (this.playing) {
        const n = Math.min(frames, this.size);
        for (let i = 0; i < n; i++) {
          ch0[i] = this.ring[this.read];
          this.read = this.read + 1 === this.cap ? 0 : this.read + 1;
        }
        this.size -= n;
        this.stats.played += n;
        if (n < frames) {                               // ran dry mid-quantum
          this.playing = false;
          this.stats.underruns++;
        }
      }
      for (let c = 1; c < out.length; c++) out[c].set(ch0);
      this.report(false);
      return true;
    }

    report(force) {
      // currentTime is the context clock; report ~4 times a second, not every 128-frame quantum.
      if (!force && currentTime - this.lastReport < 0.25) return;
      this.lastReport = currentTime;
      this.port.postMessage({
        type: "stats", played: this.stats.played, underruns: this.stats.underruns,
        dropped: this.stats.dropped, cleared: this.stats.cleared,
        buffered_ms: Math.round(this.size * 1000 / sampleRate), playing: this.playing,
      });
    }
  }

  registerProcessor("converse-capture", CaptureProcessor);
  registerProcessor("converse-playback", PlaybackProcessor);
}

if (typeof module !== "undefined" && module.exports) {
  module.exports = { Resampler, floatToInt16 };
}
