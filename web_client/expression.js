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
  // The face's shape (`attributes`, −1…1; what + means, − is the opposite).
  const ATTRIBUTES = [
    { name: "smile", label: "Smile", hint: "mouth corners up, cheeks lifted" },
    { name: "mouth_width", label: "Mouth width", hint: "a wider mouth" },
    { name: "lip_fullness", label: "Lip fullness", hint: "fuller lips" },
    { name: "eye_openness", label: "Eye openness", hint: "more open eyes" },
    { name: "brow_height", label: "Brow height", hint: "higher brows" },
    { name: "brow_arch", label: "Brow arch", hint: "more arched brows" },
    { name: "jaw_chin", label: "Chin", hint: "a longer chin" },
    { name: "face_width", label: "Face width", hint: "a wider face at the cheeks and jaw" },
    { name: "nose_width", label: "Nose width", hint: "a wider nose" },
  ];
  // Colour by region (`appearance`): the colour a swatch starts at before anything is set.
  const COLOURS = [
    { name: "lip_colour", label: "Lips", rgb: [176, 48, 78] },
    { name: "skin_tone", label: "Skin", rgb: [224, 172, 138] },
    { name: "iris_colour", label: "Iris", rgb: [72, 118, 160] },
    { name: "hair_colour", label: "Hair", rgb: [96, 62, 40] },
  ];
  const DEFAULT_STRENGTH = 0.6; // picking a colour for a region that has none turns it on at this
  const TRANSITION_MS = 300;
  const DEBOUNCE_MS = 150;
  const DEFAULT_INTENSITY = 0.6;
  const EPS = 1e-6;
  // Requests whose reply carries a new state: while one is out, the controls wait for it.
  const STATEFUL = new Set(["edit", "edit.undo", "edit.get", "preset.apply", "edit.text"]);
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
    tabs: [...document.querySelectorAll('.expression [role="tab"]')],
    shapeGrid: $("shape-grid"),
    shapeReset: $("shape-reset"),
    lookGrid: $("look-grid"),
    lookReset: $("look-reset"),
    blush: $("look-blush"),
    blushOut: $("look-blush-val"),
    blushSwatch: document.querySelector(".blush-swatch"),
    glasses: $("glasses"),
    glassesText: $("glasses-text"),
    mouthRest: $("mouth-rest"),
    mouthRestText: $("mouth-rest-text"),
    describe: $("describe"),
    describeText: $("describe-text"),
    describeSend: $("describe-send"),
    describeReply: $("describe-reply"),
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
    // The latest free-text description's outcome: {kind, text, message, understoodAs}, kind one of
    // "pending", "understood", "not_understood", "unsupported" (the server has no `edit.text`), "error".
    describe: null,
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

  const attrs = ATTRIBUTES.map((def) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    const out = document.createElement("output");
    input.id = `attr-${def.name}`;
    label.htmlFor = input.id;
    label.textContent = def.label;
    label.title = `+ ${def.hint}; − the opposite`;
    Object.assign(input, { type: "range", min: -1, max: 1, step: 0.01, value: 0 });
    input.title = label.title;
    out.htmlFor = input.id;
    ui.shapeGrid.append(label, input, out);
    return { ...def, input, out, row: [label, out] };
  });

  const colours = COLOURS.map((def) => {
    const label = document.createElement("label");
    const colour = document.createElement("input");
    const strength = document.createElement("input");
    const out = document.createElement("output");
    colour.id = `look-${def.name}`;
    strength.id = `look-${def.name}-strength`;
    label.htmlFor = colour.id;
    label.textContent = def.label;
    Object.assign(colour, { type: "color", value: hex(def.rgb) });
    colour.setAttribute("aria-label", `${def.label} colour`);
    Object.assign(strength, { type: "range", min: 0, max: 1, step: 0.01, value: 0 });
    strength.setAttribute("aria-label", `${def.label} colour strength`);
    out.htmlFor = strength.id;
    ui.lookGrid.append(label, colour, strength, out);
    return { ...def, colour, strength, out, row: [label, colour, out] };
  });

  const fmt = (v) => Number(v).toFixed(2);
  // −1…1 values: a sign always, and a real minus.
  const fmtSigned = (v) => (Math.abs(v) < 0.005 ? "0" : (v > 0 ? "+" : "−") + Math.abs(v).toFixed(2));

  function hex(rgb) {
    return "#" + rgb.map((c) => Math.round(c).toString(16).padStart(2, "0")).join("");
  }

  function rgbOf(hexValue) {
    const n = parseInt(hexValue.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

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

  function paintAttr(a) {
    const v = Number(a.input.value);
    a.out.textContent = fmtSigned(v);
    a.row.forEach((el) => el.classList.toggle("idle", v === 0));
  }

  function paintColour(c) {
    const v = Number(c.strength.value);
    c.out.textContent = v > 0 ? fmt(v) : "off";
    c.row.forEach((el) => el.classList.toggle("idle", v === 0));
  }

  function paintBlush() {
    const v = Number(ui.blush.value);
    ui.blushOut.textContent = v > 0 ? fmt(v) : "off";
    for (const el of [ui.blushOut, ui.blushSwatch, ui.blush.labels[0]]) el.classList.toggle("idle", v === 0);
  }

  function paintGlasses(value) {
    // The API takes 0–1 (a half-faded pair set over HTTP, say); the switch shows "on" for any of it.
    ui.glassesText.textContent = !ui.glasses.checked ? "off"
      : value !== undefined && value > 0 && value < 1 ? `on (${fmt(value)})` : "on";
  }

  function paintMouthRest() {
    // `mouth_rest`: "closed" (a photo's parted lips are closed for the rest pose, the default) or "photo".
    ui.mouthRestText.textContent = ui.mouthRest.checked ? "on: the photo's expression" : "off: lips closed at rest";
  }

  // A dot on the tab of a pane whose controls hold an edit, so nothing set is out of sight.
  function paintTabs() {
    const set = {
      "tab-emotion": rows.some((r) => r.select.value !== SAME && r.select.value !== "neutral"),
      "tab-shape": attrs.some((a) => Number(a.input.value) !== 0) || ui.mouthRest.checked,
      "tab-look": colours.some((c) => Number(c.strength.value) > 0) || Number(ui.blush.value) > 0 || ui.glasses.checked,
    };
    for (const tab of ui.tabs) tab.dataset.set = String(Boolean(set[tab.id]));
  }

  function setSlider(input, value) {
    if (Math.abs(Number(input.value) - value) > EPS) input.value = value;
  }

  function render(state) {
    for (const row of rows) setRow(row, row.region ? state.regions[row.region] : state.emotion);
    for (const s of scalars) setScalar(s, state[s.field]);
    ui.loudness.checked = state.lip_scale_mode === "loudness";
    const shape = state.attributes || {};
    for (const a of attrs) {
      setSlider(a.input, shape[a.name] || 0);
      paintAttr(a);
    }
    const look = state.appearance || {};
    for (const c of colours) {
      const spec = look[c.name];
      // Off: the swatch keeps the colour last picked, ready to be turned back on.
      if (spec && Array.isArray(spec.rgb) && hex(spec.rgb) !== c.colour.value) c.colour.value = hex(spec.rgb);
      setSlider(c.strength, spec ? Number(spec.strength) : 0);
      paintColour(c);
    }
    setSlider(ui.blush, Number(look.blush) || 0);
    paintBlush();
    const glasses = Number(state.glasses) || 0;
    ui.glasses.checked = glasses > 0;
    paintGlasses(glasses);
    ui.mouthRest.checked = state.mouth_rest === "photo";
    paintMouthRest();
    paintTabs();
  }

  function paintDescribe() {
    const d = ex.describe;
    ui.describeReply.dataset.kind = d ? d.kind : "";
    ui.describeReply.textContent = !d ? ""
      : d.kind === "pending" ? "…"
      : d.kind === "understood" ? `understood as: “${d.understoodAs.phrase}”` +
        (typeof d.understoodAs.similarity === "number" ? ` (${fmt(d.understoodAs.similarity)})` : "")
      : d.kind === "unsupported" ? `Not available on this server yet: ${d.message.split(";")[0]}.`
      : d.message;
    ui.describeReply.title = d && d.kind !== "pending" && d.kind !== "understood" ? d.message : "";
    ui.describeSend.disabled = ui.describeText.value.trim() === "" || (d && d.kind === "pending");
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
      inflight.push({ id, type, resolve, text: body.text });
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
    // An `error` without an id is the server refusing a message before it read its id:
    // an unknown `type` (`edit.text` on a server without it), say. Replies come in the
    // order sent, so it answers the oldest request still out.
    const i = msg.id === undefined ? (msg.type === "error" && inflight.length ? 0 : -1)
      : inflight.findIndex((r) => r.id === msg.id);
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
    if (req.type === "edit.text") describeReply(req, msg);
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
      // Refused; the server changed nothing, so neither do the controls. A description
      // that was not understood says so under its own box instead.
      if (req.type !== "edit.text") ex.error = { code: msg.code, message: msg.message };
      if (ex.state && quiet()) render(ex.state);
      paintStatus();
    }
  }

  function describeReply(req, msg) {
    const base = { text: req.text };
    if (msg.type === "edit.ack") {
      const u = msg.understood_as || {};
      ex.describe = { ...base, kind: "understood", understoodAs: { phrase: u.phrase || req.text, similarity: u.similarity } };
    } else if (msg.code === "unknown_type") {
      ex.describe = { ...base, kind: "unsupported", message: `${msg.code}: ${msg.message}` };
    } else if (msg.code === "not_understood") {
      ex.describe = { ...base, kind: "not_understood", message: msg.message };
    } else {
      ex.describe = { ...base, kind: "error", message: `${msg.code}: ${msg.message}` };
    }
    paintDescribe();
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
    if (field === "attributes") {
      // Replaces the whole map: every non-zero slider, plus any attribute this panel
      // does not know (a newer server's) as the server has it.
      const map = keepUnknown("attributes", ATTRIBUTES);
      for (const a of attrs) {
        const v = Number(a.input.value);
        if (v !== 0) map[a.name] = v;
      }
      return map;
    }
    if (field === "appearance") {
      const map = keepUnknown("appearance", [...COLOURS, { name: "blush" }]);
      for (const c of colours) {
        const strength = Number(c.strength.value);
        if (strength > 0) map[c.name] = { rgb: rgbOf(c.colour.value), strength };
      }
      const blush = Number(ui.blush.value);
      if (blush > 0) map.blush = blush;
      return map;
    }
    if (field === "glasses") return ui.glasses.checked ? 1 : 0;
    if (field === "mouth_rest") return ui.mouthRest.checked ? "photo" : "closed";
    return Number(scalars.find((s) => s.field === field).input.value);
  }

  function keepUnknown(field, known) {
    const names = new Set(known.map((d) => d.name));
    const map = {};
    for (const [k, v] of Object.entries((ex.state && ex.state[field]) || {})) if (!names.has(k)) map[k] = v;
    return map;
  }

  function describe() {
    const text = ui.describeText.value.trim();
    if (!text || !send || (ex.describe && ex.describe.kind === "pending")) return;
    flush(); // a slider still settling goes first, so the description applies on top of it
    ex.describe = { kind: "pending", text };
    paintDescribe();
    request("edit.text", { text });
  }

  function selectTab(tab, focus = false) {
    for (const t of ui.tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) tab.focus();
  }

  function applyPreset(name) {
    discardChanges(); // the preset replaces everything anyway
    request("preset.apply", { name, transition_ms: TRANSITION_MS });
  }

  for (const row of rows) {
    const field = row.region ? "regions" : "emotion";
    row.select.addEventListener("change", () => {
      paintRow(row);
      paintTabs();
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
  for (const a of attrs) {
    a.input.addEventListener("input", () => {
      paintAttr(a);
      paintTabs();
      changed("attributes", false);
    });
    a.input.addEventListener("change", flush);
    a.input.addEventListener("dblclick", () => {
      a.input.value = 0;
      paintAttr(a);
      paintTabs();
      changed("attributes", true);
    });
  }
  for (const c of colours) {
    // The picker fires `input` while the colour is being chosen, `change` once it is.
    c.colour.addEventListener("input", () => {
      if (Number(c.strength.value) === 0) c.strength.value = DEFAULT_STRENGTH;
      paintColour(c);
      paintTabs();
      changed("appearance", false);
    });
    c.colour.addEventListener("change", flush);
    c.strength.addEventListener("input", () => {
      paintColour(c);
      paintTabs();
      changed("appearance", false);
    });
    c.strength.addEventListener("change", flush);
  }
  ui.blush.addEventListener("input", () => {
    paintBlush();
    paintTabs();
    changed("appearance", false);
  });
  ui.blush.addEventListener("change", flush);
  ui.glasses.addEventListener("change", () => {
    paintGlasses();
    paintTabs();
    changed("glasses", true);
  });
  ui.mouthRest.addEventListener("change", () => {
    paintMouthRest();
    paintTabs();
    changed("mouth_rest", true);
  });
  ui.shapeReset.addEventListener("click", () => {
    for (const a of attrs) {
      a.input.value = 0;
      paintAttr(a);
    }
    paintTabs();
    changed("attributes", true);
  });
  ui.lookReset.addEventListener("click", () => {
    for (const c of colours) {
      c.strength.value = 0;
      paintColour(c);
    }
    ui.blush.value = 0;
    paintBlush();
    ui.glasses.checked = false;
    paintGlasses();
    paintTabs();
    dirty.add("appearance");
    changed("glasses", true);
  });
  ui.describe.addEventListener("submit", (ev) => {
    ev.preventDefault();
    describe();
  });
  ui.describeText.addEventListener("input", paintDescribe);
  ui.describeText.addEventListener("keydown", (ev) => {
    // Enter sends; Shift+Enter is a new line.
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      describe();
    }
  });
  ui.tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (ev) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
      if (!step) return;
      ev.preventDefault();
      selectTab(ui.tabs[(i + step + ui.tabs.length) % ui.tabs.length], true);
    });
  });
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
      ex.describe = null;
      paintDescribe();
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
      if (ex.describe && ex.describe.kind === "pending") ex.describe = null;
      paintDescribe();
      ex.ready = false;
      ui.fieldset.disabled = true;
      paintStatus();
    },
  });

  rows.forEach(paintRow);
  attrs.forEach(paintAttr);
  colours.forEach(paintColour);
  paintBlush();
  paintGlasses();
  paintTabs();
  paintDescribe();
  renderPresets();
  paintPresetButtons();
  paintStatus();
})();
