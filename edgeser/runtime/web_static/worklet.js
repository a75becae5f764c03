// AudioWorklet: the page's microphone, mixed to mono and resampled to the model's rate, in Int16 frames.
// The resampler is the one edgeser's runtime uses for a device's microphone (stream.py, Resampler): a
// polyphase windowed sinc (Kaiser, beta 8, 24 taps per side at the lower rate, pass band to 92 % of the
// lower Nyquist frequency), so the page's audio matches what a device would hear.
"use strict";

const TAPS_PER_SIDE = 24;
const KAISER_BETA = 8.0;
const CUTOFF = 0.92;

function gcd(a, b) { while (b) { [a, b] = [b, a % b]; } return a; }

function besselI0(x) {
  let sum = 1, term = 1;
  for (let k = 1; k < 64; k++) {
    term *= (x / (2 * k)) * (x / (2 * k));
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

function sinc(x) { return x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x); }

// One filter per output phase: filters[p][j] weighs input (centre - taps + 1 + j).
function kaiserSinc(up, down) {
  const taps = TAPS_PER_SIDE * Math.max(1, Math.ceil(down / up));
  const cutoff = CUTOFF * Math.min(1, up / down);
  const norm = besselI0(KAISER_BETA);
  const filters = [];
  for (let p = 0; p < up; p++) {
    const h = new Float64Array(2 * taps);
    let total = 0;
    for (let j = 0; j < 2 * taps; j++) {
      const t = (j - taps + 1) - p / up;
      const w = besselI0(KAISER_BETA * Math.sqrt(Math.max(0, 1 - (t / taps) ** 2))) / norm;
      h[j] = cutoff * sinc(cutoff * t) * w;
      total += h[j];
    }
    for (let j = 0; j < 2 * taps; j++) h[j] /= total;
    filters.push(h);
  }
  return { filters, taps };
}

class EdgeserDownsampler extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    const rateOut = opts.targetRate || 16000;
    const g = gcd(Math.round(sampleRate), rateOut);
    this.up = rateOut / g;
    this.down = Math.round(sampleRate) / g;
    this.passthrough = this.up === this.down;
    const { filters, taps } = kaiserSinc(this.up, this.down);
    this.filters = filters;
    this.taps = taps;
    this.history = new Float64Array(2 * taps);  // inputs base-2*taps+1 .. base
    this.base = -1;                              // absolute index of the newest input held
    this.next = 0;                               // next output index
    this.frameSamples = Math.max(1, Math.round(rateOut * (opts.frameMs || 20) / 1000));
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.running = true;
    this.port.onmessage = (e) => { if (e.data === "stop") this.running = false; };
  }

  emit(x) {
    const v = Math.max(-1, Math.min(1, x));
    this.frame[this.filled++] = Math.round(v * 32767);
    if (this.filled === this.frameSamples) {
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
      this.frame = new Int16Array(this.frameSamples);
      this.filled = 0;
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (!this.running) return false;
    if (!input || input.length === 0) return true;
    const n = input[0].length;
    const mono = new Float64Array(n);
    for (const channel of input) for (let i = 0; i < n; i++) mono[i] += channel[i] / input.length;
    if (this.passthrough) {
      for (let i = 0; i < n; i++) this.emit(mono[i]);
      return true;
    }
    const taps = this.taps;
    const buf = new Float64Array(this.history.length + n);
    buf.set(this.history, 0);
    buf.set(mono, this.history.length);
    const newest = this.base + n;
    const first = newest - buf.length + 1;  // absolute index of buf[0]
    // output m needs inputs up to floor(m * down / up) + taps
    const last = Math.floor(((newest - taps + 1) * this.up - 1) / this.down);
    for (let m = this.next; m <= last; m++) {
      const centre = Math.floor(m * this.down / this.up);
      const h = this.filters[m * this.down - centre * this.up];
      const start = centre - taps + 1 - first;
      let acc = 0;
      for (let j = 0; j < h.length; j++) acc += buf[start + j] * h[j];
      this.emit(acc);
    }
    this.next = Math.max(this.next, last + 1);
    this.history = buf.slice(buf.length - 2 * taps);
    this.base = newest;
    return true;
  }
}

registerProcessor("edgeser-downsampler", EdgeserDownsampler);
