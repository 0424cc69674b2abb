// avatar_rt web client: the Expression panel. Drives the edit API over the
// `control` datachannel (docs/api.md, "Edits"). Plain JS, no build step.
//
// The server holds the truth: the controls show its latest acknowledged state
// (asked for with `edit.get` whenever the channel opens, so edits made in an
// earlier session show up), and a local change is sent as an `edit` whose
// `edit.ack` brings the new state back.
"use strict";

(() => {
  const client = window.avatarClient;
  const $ = (id) => document.getElementById(id);

  const EMOTIONS = ["neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted", "contempt"];
  const SAME = "same"; // a region's select: no override, the region follows the whole face
  // `region: null` is the whole face (`emotion`); the others are keys of `regions`.
  const ROWS = [
    { key: "face", label: "Face", region: null },
    { key: "mouth", label: "Mouth", region: "mouth" },
    { key: "eyes", label: "Eyes", region: "eyes" },
    { key: "brows", label: "Brows", region: "brows" },
  ];
  const SCALARS = [
    { field: "lip_scale", id: "lip-scale" },
    { field: "head_motion", id: "head-motion" },
    { field: "blink_rate", id: "blink-rate" },
  ];
  const TRANSITION_MS = 300;
  const DEBOUNCE_MS = 150;
  const DEFAULT_INTENSITY = 0.6;
  const EPS = 1e-6;
  // Requests whose reply carries a new state: while one is out, the controls wait for it.
  const STATEFUL = new Set(["edit", "edit.undo", "edit.get", "preset.apply"]);
  const REPLIES = new Set(["edit.ack", "preset.saved", "preset.list", "error"]);

  const ui = {
    fieldset: $("expr"),
    grid: $("emo-grid"),
    loudness: $("lip-loudness"),
    undo: $("edit-undo"),
    presetName: $("preset-name"),
    presetSave: $("preset-save"),
    presetApply: $("preset-apply"),
    presetList: $("preset-list"),
    version: $("edit-version"),
    msg: $("edit-msg"),
  };

  let send = null; // the control channel's send while it is open
  let nextId = 0;
  // Sent and not answered yet, in order. The server answers every edit-API message
  // exactly once, in the order sent (the channel is ordered).
  let inflight = [];
  const dirty = new Set(); // fields changed here and not sent yet
  let timer = null; // the debounce of slider input

  // What a test or a console user may want to read (window.avatarClient.expression).
  const ex = {
    ready: false, // the state has come back since the channel opened
    state: null, // the latest acknowledged edit state, whole
    version: null,
    undoAvailable: 0,
    ack: null, // the latest edit.ack message
    presets: [],
    error: null, // {code, message} of the latest refused request, until the next success
    send: (set, transitionMs = TRANSITION_MS) => request("edit", { set, transition_ms: transitionMs }),
    request,
  };
  client.expression = ex;

  // --- the controls -----------------------------------------------------------

  const rows = ROWS.map((def) => {
    const select = document.createElement("select");
    const slider = document.createElement("input");
    const out = document.createElement("output");
    const label = document.createElement("label");
    select.id = `emo-${def.key}`;
    slider.id = `emo-${def.key}-intensity`;
    label.htmlFor = select.id;
    label.textContent = def.label;
    const choices = def.region ? [[SAME, "same as face"]] : [];
    for (const e of EMOTIONS) choices.push([e, e]);
    for (const [value, text] of choices) select.add(new Option(text, value));
    Object.assign(slider, { type: "range", min: 0, max: 1, step: 0.01, value: DEFAULT_INTENSITY });
    slider.setAttribute("aria-label", `${def.label} intensity`);
    out.htmlFor = slider.id;
    ui.grid.append(label, select, slider, out);
    return { ...def, select, slider, out, row: [label, select, slider, out] };
  });

  const scalars = SCALARS.map((s) => ({ ...s, input: $(s.id), out: $(`${s.id}-val`) }));

  const fmt = (v) => Number(v).toFixed(2);

  // The mix a row stands for: undefined = same as face; {} = neutral (as is any emotion at 0).
  function rowMix(row) {
    const emotion = row.select.value;
    if (emotion === SAME) return undefined;
    const v = Number(row.slider.value);
    return emotion === "neutral" || v <= 0 ? {} : { [emotion]: v };
  }

  function sameMix(a, b) {
    if (a === undefined || b === undefined) return a === b;
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) if (Math.abs((a[k] || 0) - (b[k] || 0)) > EPS) return false;
    return true;
  }

  function paintRow(row) {
    const emotion = row.select.value;
    const idle = emotion === SAME || emotion === "neutral";
    row.slider.disabled = idle;
    row.out.textContent = idle ? "–" : fmt(row.slider.value) + (row.mixed ? "+" : "");
    row.row.forEach((el) => el.classList.toggle("idle", idle));
  }

  // Show `mix` in a row, unless the row already means the same thing (so "happy at 0",
  // which the server keeps as neutral, stays as the user left it).
  function setRow(row, mix) {
    row.mixed = false;
    row.select.title = "";
    if (!sameMix(rowMix(row), mix)) {
      if (mix === undefined) {
        row.select.value = SAME;
      } else {
        const ranked = Object.entries(mix).sort((a, b) => b[1] - a[1]);
        if (ranked.length === 0) {
          row.select.value = "neutral";
        } else {
          row.select.value = ranked[0][0];
          row.slider.value = ranked[0][1];
        }
      }
    }
    // A mix of several emotions (set over HTTP, say) shows its strongest; editing the
    // row replaces the whole mix.
    if (mix && Object.keys(mix).length > 1) {
      row.mixed = true;
      row.select.title = Object.entries(mix).map(([e, v]) => `${e} ${fmt(v)}`).join(", ");
    }
    paintRow(row);
  }

  function setScalar(s, value) {
    if (Math.abs(Number(s.input.value) - value) > EPS) s.input.value = value;
    // The API allows more than the sliders show (lip_scale up to 2.5, say): print the real value.
    s.out.textContent = fmt(value);
  }

  function render(state) {
    for (const row of rows) setRow(row, row.region ? state.regions[row.region] : state.emotion);
    for (const s of scalars) setScalar(s, state[s.field]);
    ui.loudness.checked = state.lip_scale_mode === "loudness";
    // Future fields (attribute sliders, glasses, free text) are shown here as they land.
  }

  function renderPresets() {
    ui.presetList.replaceChildren(
      ...ex.presets.map((name) => {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.className = "chip";
        b.textContent = name;
        b.title = `Apply “${name}”`;
        b.addEventListener("click", () => {
          ui.presetName.value = name;
          paintPresetButtons();
          applyPreset(name);
        });
        li.append(b);
        return li;
      }),
    );
    ui.presetList.dataset.empty = ex.presets.length ? "" : "no presets yet";
  }

  function paintPresetButtons() {
    const empty = ui.presetName.value.trim() === "";
    ui.presetSave.disabled = empty;
    ui.presetApply.disabled = empty;
  }

  function paintStatus(text = "") {
    ui.version.textContent = ex.version === null ? (send ? "loading…" : "not connected")
      : `version ${ex.version}` + (send ? "" : " (not connected)");
    ui.undo.disabled = !send || !ex.ready || ex.undoAvailable === 0;
    ui.undo.title = ex.undoAvailable ? `Undo the last edit (${ex.undoAvailable} in the history)` : "Nothing to undo";
    if (ex.error) {
      ui.msg.textContent = `${ex.error.code}: ${ex.error.message}`;
      ui.msg.className = "bad";
    } else {
      ui.msg.textContent = text;
      ui.msg.className = "";
    }
  }

  // --- requests and replies ---------------------------------------------------

  function request(type, body = {}) {
    if (!send) return Promise.resolve({ type: "error", code: "not_connected", message: "not connected" });
    // Every request carries an id; the server echoes it in the reply.
    const id = `x${++nextId}`;
    return new Promise((resolve) => {
      inflight.push({ id, type, resolve });
      send({ type, id, ...body });
    });
  }

  function onMessage(msg) {
    if (msg.type === "edit.changed") {
      // Someone else (an agent over HTTP) changed the edits: show them unless mid-drag.
      ex.state = msg.state;
      ex.version = msg.version;
      ex.undoAvailable = msg.undo_available || 0;
      if (quiet()) render(ex.state);
      paintStatus("changed elsewhere");
      return true;
    }
    if (!REPLIES.has(msg.type)) return false;
    const i = inflight.findIndex((r) => (msg.id === undefined ? r.id === null : r.id === msg.id));
    if (i < 0) return false; // not ours: an `error` goes to the page's error box
    const [req] = inflight.splice(i, 1);
    reply(req, msg);
    req.resolve(msg);
    return true;
  }

  // Quiet: no local change waiting to go and no state-changing request out. Only then
  // do the controls take the server's state, so a reply never yanks a slider back
  // to an older value mid-drag.
  const quiet = () => dirty.size === 0 && !inflight.some((r) => STATEFUL.has(r.type));

  function reply(req, msg) {
    if (msg.type === "edit.ack") {
      ex.ack = msg;
      ex.state = msg.state;
      ex.version = msg.version;
      ex.undoAvailable = msg.undo_available || 0;
      if (req.type !== "edit.get") ex.error = null;
      if (req.type === "edit.get") ready();
      if (quiet()) render(ex.state);
      paintStatus(req.type === "edit.undo" ? "undone" : req.type === "preset.apply" ? "preset applied" : "");
    } else if (msg.type === "preset.saved") {
      ex.error = null;
      paintStatus(`saved “${msg.name}”`);
      request("preset.list");
    } else if (msg.type === "preset.list") {
      ex.presets = msg.names || [];
      renderPresets();
    } else {
      // Refused; the server changed nothing, so neither do the controls.
      ex.error = { code: msg.code, message: msg.message };
      if (ex.state && quiet()) render(ex.state);
      paintStatus();
    }
  }

  function ready() {
    ex.ready = true;
    ui.fieldset.disabled = false;
  }

  // --- local changes --------------------------------------------------------

  function changed(field, now) {
    dirty.add(field);
    clearTimeout(timer);
    timer = null;
    if (now) flush();
    else timer = setTimeout(flush, DEBOUNCE_MS);
  }

  function discardChanges() {
    clearTimeout(timer);
    timer = null;
    dirty.clear();
  }

  function flush() {
    clearTimeout(timer);
    timer = null;
    if (dirty.size === 0 || !send) return;
    const set = {};
    for (const field of dirty) set[field] = read(field);
    dirty.clear();
    request("edit", { set, transition_ms: TRANSITION_MS });
  }

  function read(field) {
    if (field === "emotion") return rowMix(rows[0]);
    if (field === "regions") {
      // `regions` replaces the whole map: send every override, including those of
      // regions this panel has no row for (head), or they would be dropped.
      const map = {};
      for (const [region, mix] of Object.entries((ex.state && ex.state.regions) || {})) map[region] = mix;
      for (const row of rows) {
        if (!row.region) continue;
        const mix = rowMix(row);
        if (mix === undefined) delete map[row.region];
        else map[row.region] = mix;
      }
      return map;
    }
    if (field === "lip_scale_mode") return ui.loudness.checked ? "loudness" : "fixed";
    return Number(scalars.find((s) => s.field === field).input.value);
  }

  function applyPreset(name) {
    discardChanges(); // the preset replaces everything anyway
    request("preset.apply", { name, transition_ms: TRANSITION_MS });
  }

  for (const row of rows) {
    const field = row.region ? "regions" : "emotion";
    row.select.addEventListener("change", () => {
      paintRow(row);
      changed(field, true);
    });
    row.slider.addEventListener("input", () => {
      paintRow(row);
      changed(field, false);
    });
    row.slider.addEventListener("change", flush); // let go of the slider: send now
  }
  for (const s of scalars) {
    s.input.addEventListener("input", () => {
      s.out.textContent = fmt(s.input.value);
      changed(s.field, false);
    });
    s.input.addEventListener("change", flush);
  }
  ui.loudness.addEventListener("change", () => changed("lip_scale_mode", true));
  ui.undo.addEventListener("click", () => {
    discardChanges();
    request("edit.undo", { transition_ms: TRANSITION_MS });
  });
  ui.presetName.addEventListener("input", paintPresetButtons);
  ui.presetSave.addEventListener("click", () => {
    flush(); // the preset is what the controls show
    request("preset.save", { name: ui.presetName.value.trim() });
  });
  ui.presetApply.addEventListener("click", () => applyPreset(ui.presetName.value.trim()));

  // --- the channel's life -----------------------------------------------------

  client.use({
    open(sendFn) {
      send = sendFn;
      ex.ready = false;
      ex.error = null;
      paintStatus();
      request("edit.get");
      request("preset.list");
    },
    message: onMessage,
    close() {
      send = null;
      discardChanges();
      const gone = inflight;
      inflight = [];
      for (const r of gone) r.resolve({ type: "error", code: "closed", message: "the connection closed" });
      ex.ready = false;
      ui.fieldset.disabled = true;
      paintStatus();
    },
  });

  rows.forEach(paintRow);
  renderPresets();
  paintPresetButtons();
  paintStatus();
})();
