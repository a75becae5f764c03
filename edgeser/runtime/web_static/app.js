// edgeser live dashboard: plain JS, no build step, no libraries. Reads /config, opens /ws, draws every update.
"use strict";
(() => {
  const DIMS = ["arousal", "dominance", "valence"];
  const COLOURS = { arousal: "#ff7a59", dominance: "#7fc8f8", valence: "#9be564" };
  const TRAIL = 24;               // points in the plane's fading trail
  const MAX_ROWS = 200000;        // rows kept for the CSV (about 28 hours at a 0.5 s hop)
  const MAX_LATENCIES = 20000;    // end-to-end latencies kept (read by the benchmark)
  const SENT_KEEP = 4096;         // sent frames remembered to time their updates
  const SEND_BUFFER_LIMIT = 65536; // bytes waiting in the socket before frames are dropped (and counted)
  const LEVEL_FLOOR_DBFS = -80;
  const CSV_COLUMNS = ["time_utc", "index", "t", "speech", "arousal", "dominance", "valence", "level_dbfs",
    "latency_ms", "dropped_samples"];

  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get("token");
  const query = token ? "?token=" + encodeURIComponent(token) : "";
  const s = {
    config: null, ws: null, audio: null, running: false, rows: [], latencies: [], sent: [], sentSamples: 0,
    pageDropped: 0, lastAdv: null, last: null, state: "idle",
  };
  // Read-only view for tests and the benchmark (nothing here reaches the server).
  window.edgeser = {
    get config() { return s.config; }, get updates() { return s.rows; }, get latencies() { return s.latencies; },
    get state() { return s.state; }, get running() { return s.running; }, get pageDropped() { return s.pageDropped; },
  };

  function setState(text, message) {
    s.state = text;
    $("state").textContent = text;
    const box = $("message");
    box.hidden = !message;
    box.textContent = message || "";
  }

  function band(dim, value) {
    const rows = s.config && s.config.bands && s.config.bands[dim];
    if (!rows || value === null) return "";
    for (const [upper, word] of rows) if (value <= upper) return word;
    return rows.length ? rows[rows.length - 1][1] : "";
  }

  // ---- the socket and the microphone ------------------------------------------------------------
  function openSocket() {
    return new Promise((resolve, reject) => {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const ws = new WebSocket(`${scheme}://${location.host}/ws${query}`);
      ws.binaryType = "arraybuffer";
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new Error("the dashboard refused the connection"));
      ws.onmessage = (e) => receive(JSON.parse(e.data));
      ws.onclose = (e) => closed(ws, e);
      s.ws = ws;
    });
  }

  async function startMic() {
    if (!navigator.mediaDevices || !window.AudioWorkletNode) {
      throw new Error("this page cannot use a microphone here: browsers allow it only over https or on this " +
        "machine's own address (127.0.0.1 or localhost)");
    }
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    const ctx = new AudioContext();
    await ctx.audioWorklet.addModule("worklet.js");
    const node = new AudioWorkletNode(ctx, "edgeser-downsampler", {
      numberOfInputs: 1, numberOfOutputs: 1,
      processorOptions: { targetRate: s.config.sampling_rate, frameMs: s.config.frame_ms },
    });
    const mute = ctx.createGain();
    mute.gain.value = 0;  // keeps the graph pulling the worklet without playing the microphone back
    const input = ctx.createMediaStreamSource(stream);
    input.connect(node);
    node.connect(mute);
    mute.connect(ctx.destination);
    node.port.onmessage = (e) => sendFrame(e.data);
    await ctx.resume();
    s.audio = { stream, ctx, node, input };
  }

  function stopMic() {
    const a = s.audio;
    s.audio = null;
    if (!a) return;
    a.node.port.onmessage = null;
    a.node.port.postMessage("stop");
    a.input.disconnect();
    a.node.disconnect();
    a.stream.getTracks().forEach((t) => t.stop());
    a.ctx.close();
  }

  function sendFrame(buffer) {
    const ws = s.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const n = buffer.byteLength / 2;
    if (ws.bufferedAmount > SEND_BUFFER_LIMIT) { s.pageDropped += n; return; }
    ws.send(buffer);
    s.sentSamples += n;
    s.sent.push({ end: s.sentSamples, time: performance.now() });
    if (s.sent.length > SENT_KEEP) s.sent.shift();
  }

  async function start() {
    s.rows.length = 0; s.latencies.length = 0; s.sent.length = 0;
    s.sentSamples = 0; s.pageDropped = 0; s.lastAdv = null; s.last = null;
    $("toggle").disabled = true;
    try {
      await openSocket();
      if (s.config.mode === "browser") await startMic();
      s.running = true;
      setState("running");
    } catch (err) {
      stop();
      setState("error", String(err.message || err));
    }
    $("toggle").disabled = false;
    render();
  }

  function stop() {
    s.running = false;
    stopMic();
    if (s.ws && s.ws.readyState <= WebSocket.OPEN) s.ws.close(1000, "stopped");
    s.ws = null;
    if (s.state === "running") setState("stopped");
    render();
  }

  function closed(ws, e) {
    if (ws !== s.ws) return;
    const wasRunning = s.running;
    s.running = false;
    s.ws = null;
    stopMic();
    if (wasRunning && e.code !== 1000) {
      setState("closed", `the dashboard closed the connection (${e.code}${e.reason ? ": " + e.reason : ""})`);
    }
    render();
  }

  // ---- updates ------------------------------------------------------------------------------------
  function receive(msg) {
    if (msg.type === "status") {
      setState(msg.state, msg.message);
      return;
    }
    if (msg.type !== "update") return;
    let e2e = null;
    if (s.config.mode === "browser") {
      const target = Math.round(msg.t * s.config.sampling_rate);
      while (s.sent.length && s.sent[0].end < target) s.sent.shift();
      if (s.sent.length) {
        e2e = performance.now() - s.sent[0].time;
        s.latencies.push(e2e);
        if (s.latencies.length > MAX_LATENCIES) s.latencies.shift();
      }
    }
    const row = { ...msg, time_utc: new Date().toISOString(), e2e_ms: e2e };
    s.rows.push(row);
    if (s.rows.length > MAX_ROWS) s.rows.shift();
    s.last = row;
    if (row.speech && row.arousal !== null) s.lastAdv = row;
    render();
  }

  // ---- drawing ------------------------------------------------------------------------------------
  function render() {
    const last = s.last;
    const adv = s.lastAdv;
    for (const dim of DIMS) {
      $(dim).textContent = adv ? adv[dim].toFixed(3) : "–";
      $("band-" + dim).textContent = adv ? band(dim, adv[dim]) : "";
    }
    const speech = Boolean(last && last.speech);
    $("voice").textContent = speech ? "speech" : "silence";
    $("voice").className = "voice " + (speech ? "speech" : "silence");
    if (last) {
      const frac = Math.max(0, Math.min(1, (last.level_dbfs - LEVEL_FLOOR_DBFS) / -LEVEL_FLOOR_DBFS));
      $("level-bar").style.width = (100 * frac).toFixed(1) + "%";
      $("level").textContent = `${last.level_dbfs.toFixed(0)} dBFS`;
      $("latency").textContent = `model ${last.latency_ms.toFixed(1)} ms` +
        (last.e2e_ms !== null ? ` · frame to page ${last.e2e_ms.toFixed(0)} ms` : "");
      $("dropped").textContent = `${last.dropped + s.pageDropped} samples`;
    }
    $("updates").textContent = String(s.rows.length);
    $("toggle").textContent = s.running ? "Stop" : "Start";
    $("toggle").className = s.running ? "running" : "";
    $("download").disabled = s.rows.length === 0;
    drawPlane();
    drawSeries();
  }

  function drawPlane() {
    const c = $("plane"), g = c.getContext("2d"), m = 36, w = c.width - 2 * m, h = c.height - 2 * m;
    const x = (v) => m + v * w, y = (a) => m + (1 - a) * h;
    g.clearRect(0, 0, c.width, c.height);
    g.strokeStyle = "#2a323a"; g.lineWidth = 1; g.fillStyle = "#8a949e"; g.font = "12px system-ui";
    for (let k = 0; k <= 4; k++) {
      const f = k / 4;
      g.beginPath(); g.moveTo(x(f), y(0)); g.lineTo(x(f), y(1)); g.moveTo(x(0), y(f)); g.lineTo(x(1), y(f)); g.stroke();
      g.fillText(f.toFixed(2), x(f) - 12, y(0) + 16);
      g.fillText(f.toFixed(2), 2, y(f) + 4);
    }
    g.fillText("valence →", x(1) - 60, y(0) + 30);
    g.save(); g.translate(12, y(1) + 70); g.rotate(-Math.PI / 2); g.fillText("arousal →", 0, 0); g.restore();
    drawBandLines(g, x, y);
    const points = [];
    for (let i = s.rows.length - 1; i >= 0 && points.length < TRAIL; i--) {
      if (s.rows[i].arousal !== null) points.unshift(s.rows[i]);
    }
    points.forEach((p, i) => {
      const alpha = (i + 1) / points.length;
      const current = i === points.length - 1;
      g.beginPath();
      g.arc(x(p.valence), y(p.arousal), current ? 9 : 3 + 3 * alpha, 0, 2 * Math.PI);
      g.fillStyle = `rgba(255, 122, 89, ${current ? 1 : 0.15 + 0.6 * alpha})`;
      g.fill();
      if (current) { g.strokeStyle = "#ffffff"; g.lineWidth = 2; g.stroke(); }
      if (i > 0) {
        const q = points[i - 1];
        g.beginPath(); g.moveTo(x(q.valence), y(q.arousal)); g.lineTo(x(p.valence), y(p.arousal));
        g.strokeStyle = `rgba(255, 122, 89, ${0.1 + 0.4 * alpha})`; g.lineWidth = 1.5; g.stroke();
      }
    });
  }

  function drawBandLines(g, x, y) {
    const bands = s.config && s.config.bands;
    if (!bands) return;
    g.save(); g.setLineDash([4, 4]); g.strokeStyle = "#4a545e";
    for (const [upper] of (bands.valence || []).slice(0, -1)) {
      g.beginPath(); g.moveTo(x(upper), y(0)); g.lineTo(x(upper), y(1)); g.stroke();
    }
    for (const [upper] of (bands.arousal || []).slice(0, -1)) {
      g.beginPath(); g.moveTo(x(0), y(upper)); g.lineTo(x(1), y(upper)); g.stroke();
    }
    g.restore();
  }

  function drawSeries() {
    const c = $("series"), g = c.getContext("2d"), m = 30, w = c.width - 2 * m, h = c.height - 2 * m;
    const span = (s.config && s.config.history_s) || 60;
    g.clearRect(0, 0, c.width, c.height);
    g.strokeStyle = "#2a323a"; g.lineWidth = 1; g.fillStyle = "#8a949e"; g.font = "12px system-ui";
    const y = (v) => m + (1 - v) * h;
    for (let k = 0; k <= 4; k++) {
      g.beginPath(); g.moveTo(m, y(k / 4)); g.lineTo(m + w, y(k / 4)); g.stroke();
      g.fillText((k / 4).toFixed(2), 0, y(k / 4) + 4);
    }
    g.fillText(`-${span} s`, m, c.height - 8); g.fillText("now", m + w - 24, c.height - 8);
    if (!s.rows.length) return;
    const end = s.rows[s.rows.length - 1].t;
    const x = (t) => m + (1 - (end - t) / span) * w;
    let first = s.rows.length - 1;
    while (first > 0 && end - s.rows[first - 1].t <= span) first--;
    for (const dim of DIMS) {
      g.beginPath(); g.strokeStyle = COLOURS[dim]; g.lineWidth = 2;
      let pen = false;
      for (let i = first; i < s.rows.length; i++) {
        const r = s.rows[i];
        if (r[dim] === null) { pen = false; continue; }
        if (pen) g.lineTo(x(r.t), y(r[dim])); else g.moveTo(x(r.t), y(r[dim]));
        pen = true;
      }
      g.stroke();
    }
  }

  // ---- CSV ----------------------------------------------------------------------------------------
  function csvText() {
    const num = (v, digits) => (v === null ? "" : v.toFixed(digits));
    const lines = [CSV_COLUMNS.join(",")];
    for (const r of s.rows) {
      lines.push([r.time_utc, r.index, r.t.toFixed(3), r.speech ? 1 : 0, num(r.arousal, 6), num(r.dominance, 6),
        num(r.valence, 6), r.level_dbfs.toFixed(2), r.latency_ms.toFixed(3), r.dropped].join(","));
    }
    return lines.join("\n") + "\n";
  }

  function download() {
    const url = URL.createObjectURL(new Blob([csvText()], { type: "text/csv" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `edgeser-live-${new Date().toISOString().replace(/[:.]/g, "-")}.csv`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  async function init() {
    $("toggle").addEventListener("click", () => (s.running ? stop() : start()));
    $("download").addEventListener("click", download);
    try {
      const response = await fetch("config" + query, { cache: "no-store" });
      if (!response.ok) throw new Error(`the dashboard refused this page (${response.status})`);
      s.config = await response.json();
    } catch (err) {
      setState("error", String(err.message || err));
      return;
    }
    const c = s.config;
    $("source").textContent = `${c.source} · ${c.model} · window ${c.window_s} s, update every ${c.hop_s} s`;
    $("toggle").disabled = false;
    render();
    if (c.mode === "server") start();  // the server streams its own audio: show it at once
  }

  init();
})();
