// avatar_rt web client: one session, one RTCPeerConnection, no build step.
// Protocol: docs/api.md.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    video: $("avatar"),
    unmute: $("unmute"),
    avatarId: $("avatar-id"),
    start: $("start"),
    stop: $("stop"),
    state: $("state"),
    dot: $("state-dot"),
    mic: $("mic"),
    error: $("error"),
    session: $("session"),
    fps: $("stat-fps"),
    lat50: $("stat-lat50"),
    lat95: $("stat-lat95"),
    rtt: $("stat-rtt"),
    render: $("stat-render"),
    frames: $("stat-frames"),
    dropped: $("stat-dropped"),
    speech: $("stat-speech"),
  };

  // Everything a test or a console user may want to read lives here.
  const client = {
    state: "idle",
    sessionId: null,
    session: null, // the POST /v1/sessions reply, kept whole: avatar.mouth_box, fps, size
    metrics: null, // the latest `metrics` message
    metricsCount: 0,
    rttMs: null,
    mic: null, // "on" | "denied" | "unavailable"
    agentState: null, // a voice agent's state (idle / listening / thinking / speaking) when one drives the session
    agentEvents: [], // the agent's playback.* and agent.state events seen on the control channel
    error: null, // {code, message} of the last failure
    pc: null,
    start,
    stop,
    use,
    api, // for the other panels (avatars.js): errors come as {status, code, message}
  };
  window.avatarClient = client;

  // Panels that talk over the control datachannel (expression.js) plug in here:
  // {open(send), message(msg) → true if it was theirs, close()}.
  const plugins = [];
  function use(plugin) {
    plugins.push(plugin);
  }

  let dc = null;
  let micStream = null;
  let pingTimer = null;
  let pingId = 0;
  // Bumped by every start/stop so an async start that was overtaken by a stop
  // notices when it resumes and does not resurrect the session.
  let generation = 0;

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // `body`: an object, sent as JSON, or a Blob (a photo), sent as it is with its own type.
  async function api(method, path, body) {
    const init = { method, headers: {} };
    if (body instanceof Blob) {
      init.headers["Content-Type"] = body.type || "application/octet-stream";
      init.body = body;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "network", `${method} ${path} failed: ${e.message}`);
    }
    if (res.status === 204) return null;
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON (a proxy's error page, say): fall through and report the raw text.
    }
    if (!res.ok) {
      const err = (data && data.error) || {};
      throw new ApiError(
        res.status,
        err.code || `http_${res.status}`,
        err.message || text.slice(0, 200) || res.statusText,
      );
    }
    return data;
  }

  function setState(state) {
    client.state = state;
    ui.state.textContent = state;
    ui.dot.dataset.state = state;
    const running = state !== "idle" && state !== "closed" && state !== "error" && state !== "failed";
    ui.start.disabled = running;
    ui.stop.disabled = !running;
    ui.avatarId.disabled = running;
  }

  function showError(e) {
    const code = e.code || e.name || "error";
    client.error = { code, message: e.message };
    ui.error.textContent = `${code}: ${e.message}`;
    ui.error.hidden = false;
  }

  function clearError() {
    client.error = null;
    ui.error.hidden = true;
    ui.error.textContent = "";
  }

  function setMic(mode, text) {
    client.mic = mode;
    ui.mic.textContent = text;
    ui.mic.dataset.mic = mode;
  }

  async function openMic() {
    const listenOnly = "connecting listen-only, so the avatar idles.";
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      // Browsers hide getUserMedia on plain http unless the host is localhost.
      setMic("unavailable", `No microphone access on this page (needs https or localhost); ${listenOnly}`);
      return null;
    }
    try {
      // Echo cancellation keeps the avatar's own voice from the speakers out of the mic,
      // otherwise it would lip-sync to itself.
      const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true } });
      setMic("on", "Microphone on: speak and the avatar says it back.");
      return stream;
    } catch (e) {
      const denied = e.name === "NotAllowedError" || e.name === "SecurityError";
      const why = denied ? "Microphone permission refused"
        : e.name === "NotFoundError" ? "No microphone found"
        : `Microphone unavailable (${e.name})`;
      setMic(denied ? "denied" : "unavailable", `${why}; ${listenOnly}`);
      return null;
    }
  }

  // No trickle ICE in this API: the offer must carry every candidate.
  function iceGatheringComplete(pc, timeoutMs = 5000) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      const check = () => {
        if (pc.iceGatheringState === "complete") finish();
      };
      // An unreachable interface can stall gathering; the host candidates found by
      // then are enough for a server on the same network.
      const timer = setTimeout(finish, timeoutMs);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  async function playVideo() {
    const v = ui.video;
    try {
      await v.play();
      ui.unmute.hidden = !v.muted;
    } catch (e) {
      // AbortError just means a second track arrived mid-play; that call plays it.
      if (e.name !== "NotAllowedError") return;
      // The autoplay policy refused sound. Show the face muted rather than nothing,
      // and let one click bring the voice back.
      v.muted = true;
      ui.unmute.hidden = false;
      try {
        await v.play();
      } catch {
        // Even muted playback refused: the unmute click will start it.
      }
    }
  }

  function sendControl(msg) {
    if (!dc || dc.readyState !== "open") return false;
    dc.send(JSON.stringify(msg));
    return true;
  }

  function sendPing() {
    sendControl({ type: "ping", id: ++pingId, t: performance.now() });
  }

  function closePlugins() {
    for (const p of plugins) if (p.close) p.close();
  }

  function onControl(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg.type === "metrics") {
      client.metrics = msg;
      client.metricsCount += 1;
      renderStats();
    } else if (msg.type === "pong") {
      // The server echoes our own clock back, so no clock sync is needed.
      if (typeof msg.t === "number") client.rttMs = performance.now() - msg.t;
      renderStats();
    } else if (msg.type === "agent.state" || msg.type.startsWith("playback.")) {
      // A voice agent drives this session (?session=…): what it is doing, for the page and its tests.
      if (msg.type === "agent.state") client.agentState = msg.state;
      client.agentEvents.push(msg.type);
    } else if (plugins.some((p) => p.message && p.message(msg))) {
      // A panel's reply (an edit.ack, say), handled there.
    } else if (msg.type === "error") {
      showError({ code: msg.code, message: msg.message });
    }
  }

  const num = (v, digits = 0, unit = "") =>
    typeof v === "number" && isFinite(v) ? `${v.toFixed(digits)}${unit}` : "–";

  function renderStats() {
    const m = client.metrics || {};
    const lat = m.latency_ms || {};
    ui.fps.textContent = num(m.fps, 1);
    ui.lat50.textContent = num(lat.p50, 0, " ms");
    ui.lat95.textContent = num(lat.p95, 0, " ms");
    ui.rtt.textContent = num(client.rttMs, 1, " ms");
    ui.render.textContent = num((m.render_ms || {}).p50, 1, " ms");
    ui.frames.textContent = num(m.frames);
    ui.dropped.textContent = num(m.dropped_frames);
    ui.speech.textContent = m.speech === undefined ? "–" : m.speech ? "yes" : "no";
  }

  function resetStats() {
    client.metrics = null;
    client.metricsCount = 0;
    client.rttMs = null;
    renderStats();
  }

  function describeSession(s) {
    const a = s.avatar || {};
    const video = s.size ? `${s.size}×${s.size}` + (s.fps ? ` @ ${s.fps} fps` : "") : "";
    ui.session.textContent = [`session ${s.session_id}`, a.avatar_id && `avatar ${a.avatar_id}`, video]
      .filter(Boolean)
      .join("\n");
  }

  async function start() {
    if (client.pc || client.state === "starting") return;
    const gen = ++generation;
    clearError();
    resetStats();
    ui.session.textContent = "";
    setState("starting");
    try {
      // Ask for the mic before creating the session so a slow permission prompt
      // does not hold one of the server's session slots.
      // ?session=ID watches a session a voice agent drives (its audio is the agent's): no microphone.
      micStream = watchSession ? null : await openMic();
      if (gen !== generation) return releaseMic();

      const avatarId = ui.avatarId.value.trim();
      const session = watchSession
        ? await api("GET", `/v1/sessions/${encodeURIComponent(watchSession)}`)
        : await api("POST", "/v1/sessions", avatarId ? { avatar_id: avatarId } : {});
      if (gen !== generation) {
        deleteSession(session.session_id).catch(() => {});
        return releaseMic();
      }
      client.session = session;
      client.sessionId = session.session_id;
      describeSession(session);

      const pc = new RTCPeerConnection();
      client.pc = pc;
      pc.onconnectionstatechange = () => {
        if (client.pc !== pc) return;
        setState(pc.connectionState);
        if (pc.connectionState === "failed") {
          showError({ code: "connection_failed", message: "the WebRTC connection to the server failed" });
          stop("failed");
        }
      };

      // Audio and video on one stream so the <video> element plays the voice in
      // step with the face.
      const remote = new MediaStream();
      ui.video.srcObject = remote;
      ui.video.muted = false;
      pc.ontrack = (ev) => {
        remote.addTrack(ev.track);
        playVideo();
      };

      const micTrack = micStream && micStream.getAudioTracks()[0];
      if (micTrack) pc.addTransceiver(micTrack, { direction: "sendrecv", streams: [micStream] });
      else pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addTransceiver("video", { direction: "recvonly" });

      const channel = pc.createDataChannel("control", { ordered: true });
      dc = channel;
      channel.onopen = () => {
        sendPing();
        pingTimer = setInterval(sendPing, 1000);
        for (const p of plugins) if (p.open) p.open(sendControl);
      };
      channel.onclose = () => {
        // stop() has already cleaned up after a channel it closed itself.
        if (channel !== dc) return;
        clearInterval(pingTimer);
        closePlugins();
      };
      channel.onmessage = (ev) => onControl(ev.data);

      setState("connecting");
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringComplete(pc);
      if (gen !== generation) return;
      const offer = pc.localDescription;
      const answer = await api("POST", `/v1/sessions/${encodeURIComponent(client.sessionId)}/offer`, {
        sdp: offer.sdp,
        type: offer.type,
      });
      if (gen !== generation) return;
      await pc.setRemoteDescription(answer);
    } catch (e) {
      if (gen !== generation) return;
      showError(e);
      await stop("error");
    }
  }

  function releaseMic() {
    if (micStream) micStream.getTracks().forEach((t) => t.stop());
    micStream = null;
  }

  function deleteSession(id) {
    return api("DELETE", `/v1/sessions/${encodeURIComponent(id)}`);
  }

  async function stop(finalState = "closed") {
    generation += 1;
    clearInterval(pingTimer);
    pingTimer = null;
    const channel = dc;
    dc = null;
    if (channel) channel.close();
    closePlugins();
    if (client.pc) client.pc.close();
    client.pc = null;
    releaseMic();
    ui.video.srcObject = null;
    ui.unmute.hidden = true;
    const id = client.sessionId;
    client.sessionId = null;
    setState(typeof finalState === "string" ? finalState : "closed");
    if (!id || watchSession) return; // a watched session belongs to its agent
    try {
      await deleteSession(id);
    } catch (e) {
      // Already gone (expired, or the server restarted) is what we wanted anyway.
      if (e.code !== "unknown_session") showError(e);
    }
  }

  ui.start.addEventListener("click", () => start());
  ui.stop.addEventListener("click", () => stop());
  ui.unmute.addEventListener("click", () => {
    ui.video.muted = false;
    ui.unmute.hidden = true;
    ui.video.play().catch(() => {});
  });
  // Closing the tab should free the server's session slot now, not at a timeout.
  window.addEventListener("pagehide", () => {
    if (client.sessionId) {
      fetch(`/v1/sessions/${encodeURIComponent(client.sessionId)}`, { method: "DELETE", keepalive: true });
    }
  });

  const preset = new URLSearchParams(location.search).get("avatar_id");
  const watchSession = new URLSearchParams(location.search).get("session");
  if (preset) ui.avatarId.value = preset;
  setState("idle");
})();
