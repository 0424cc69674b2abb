// Portrait panel: bring your own photo (file picker, drag and drop, camera snapshot),
// see the face the server found or why it refused the photo, and pick or delete the
// avatars already on the server. Start uses the chosen one (through #avatar-id).
// Endpoints: docs/api.md, "Avatars".
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  // An <img> cannot send the bearer header: off loopback its URL carries the page's token (docs/api.md, auth).
  const TOKEN = new URLSearchParams(location.search).get("token");
  const withToken = (url) => (TOKEN ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(TOKEN)}` : url);
  const ui = {
    drop: $("drop"),
    file: $("photo-file"),
    choose: $("choose-photo"),
    camera: $("camera"),
    cameraBox: $("camera-box"),
    cameraVideo: $("camera-video"),
    snap: $("snap"),
    cameraCancel: $("camera-cancel"),
    img: $("preview-img"),
    faceBox: $("face-box"),
    status: $("upload-status"),
    refusal: $("refusal"),
    refusalTitle: $("refusal-title"),
    refusalMessage: $("refusal-message"),
    refusalTip: $("refusal-tip"),
    gallery: $("gallery"),
    count: $("gallery-count"),
    avatarId: $("avatar-id"),
  };

  // The server's limit on a request body (app.py MAX_UPLOAD_BYTES); checked here too, so a
  // huge file is refused at once instead of after its upload.
  const MAX_UPLOAD_BYTES = 20 * 1024 * 1024;

  // A refusal in plain words: a headline per error code and what to try instead. The
  // server's own message (with its numbers) is shown between them.
  const REFUSALS = {
    no_face: ["No face found in this photo.",
      "Try a well-lit photo of one person looking at the camera, the face filling a good part of the picture."],
    multiple_faces: ["More than one face in this photo.",
      "Crop the photo to just your face, or use one where you are alone."],
    face_too_small: ["The face is too small to animate.",
      "Crop closer to the face, or use a larger photo."],
    face_in_profile: ["The face is turned to the side.",
      "Use a photo looking straight at the camera."],
    face_rotated: ["The face is not upright.",
      "Rotate the photo so the face is upright, then try again."],
    not_an_image: ["This file is not a photo the server can read.",
      "Use a JPEG, PNG, WebP or BMP picture."],
    image_too_large: ["This photo is too large.",
      "Use a smaller copy: a photo of a few megapixels is plenty."],
    body_too_large: ["This file is too large to upload.",
      "Use a smaller copy: a photo of a few megapixels is plenty."],
    camera: ["The camera is not available.", "Choose a photo file instead."],
    avatar_in_use: ["This avatar is in a call.", "Stop the call, then delete it."],
    unknown_avatar: ["This avatar is no longer on the server.", "Upload the photo again."],
    network: ["The server could not be reached.", "Check the connection and try again."],
  };

  const state = {
    selected: null, // avatar id Start will use (null: the server's default)
    defaultId: null,
    gallery: [], // the GET /v1/avatars reply's `avatars`
    preview: null, // {avatar_id, face_box, width, height} of the photo shown
    refusal: null, // {code, message} of the last refused photo
    busy: false,
    uploads: 0, // finished uploads, accepted or refused (tests wait on it)
    refresh: refreshGallery,
    upload,
  };
  const client = window.avatarClient; // app.js, loaded first
  client.avatars = state;

  let previewUrl = null; // the object URL of a refused photo's preview
  let cameraStream = null;
  let armedDelete = null; // {button, timer}: a delete asks to be pressed twice

  const request = (method, path, body) => client.api(method, path, body);

  // --- preview ----------------------------------------------------------
  function setStatus(text) {
    ui.status.textContent = text;
  }

  function showRefusal(err) {
    state.refusal = { code: err.code, message: err.message };
    const [title, tip] = REFUSALS[err.code] || ["The photo could not be used.", "Try another photo."];
    ui.refusalTitle.textContent = title;
    ui.refusalMessage.textContent = err.message ? `The server says: ${err.message}.` : "";
    ui.refusalTip.textContent = tip;
    ui.refusal.hidden = false;
    ui.drop.dataset.state = "refused";
    setStatus(state.selected ? "Start still uses the avatar chosen below." : "Start still uses the server's default.");
  }

  function clearRefusal() {
    state.refusal = null;
    ui.refusal.hidden = true;
    delete ui.drop.dataset.state;
  }

  function showPhoto(src, box, size) {
    ui.img.hidden = false;
    ui.img.src = src;
    if (!box) {
      ui.faceBox.hidden = true;
      return;
    }
    // The box is in the prepared portrait's pixels; the preview scales it with the image.
    const [x0, y0, x1, y1] = box;
    Object.assign(ui.faceBox.style, {
      left: `${(100 * x0) / size}%`,
      top: `${(100 * y0) / size}%`,
      width: `${(100 * (x1 - x0)) / size}%`,
      height: `${(100 * (y1 - y0)) / size}%`,
    });
    ui.faceBox.hidden = false;
  }

  function showAvatar(desc) {
    state.preview = desc;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    clearRefusal();
    ui.img.alt = `the portrait of avatar ${desc.avatar_id}, its face outlined`;
    showPhoto(withToken(`/v1/avatars/${encodeURIComponent(desc.avatar_id)}/image`), desc.face_box, desc.width);
  }

  function select(avatarId) {
    state.selected = avatarId;
    ui.avatarId.value = avatarId && avatarId !== state.defaultId ? avatarId : "";
    markSelected();
  }

  function markSelected() {
    const current = ui.avatarId.value.trim() || state.defaultId;
    for (const b of ui.gallery.querySelectorAll("button.thumb")) {
      b.setAttribute("aria-pressed", String(b.dataset.id === current));
    }
  }

  // --- upload -----------------------------------------------------------
  async function upload(blob, name = "photo") {
    if (state.busy) return;
    state.busy = true;
    clearRefusal();
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(blob);
    ui.img.alt = `the photo ${name}`;
    showPhoto(previewUrl, null);
    try {
      if (blob.size > MAX_UPLOAD_BYTES) {
        throw { code: "body_too_large", message: `the file is ${(blob.size / 2 ** 20).toFixed(1)} MiB; at most 20 MiB is accepted` };
      }
      setStatus("Uploading and finding the face…");
      ui.drop.setAttribute("aria-busy", "true");
      const desc = await request("POST", "/v1/avatars", blob);
      showAvatar(desc);
      select(desc.avatar_id);
      setStatus("Face found. Press Start to talk as this portrait.");
      await refreshGallery();
    } catch (e) {
      showRefusal(e);
    } finally {
      ui.drop.removeAttribute("aria-busy");
      state.busy = false;
      state.uploads += 1;
    }
  }

  function firstImage(files) {
    return files && files.length ? files[0] : null;
  }

  ui.choose.addEventListener("click", () => ui.file.click());
  ui.file.addEventListener("change", () => {
    const file = firstImage(ui.file.files);
    if (file) upload(file, file.name);
    ui.file.value = ""; // choosing the same file again still uploads it
  });
  ui.drop.addEventListener("click", () => ui.file.click());
  ui.drop.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      ui.file.click();
    }
  });
  for (const type of ["dragenter", "dragover"]) {
    ui.drop.addEventListener(type, (ev) => {
      ev.preventDefault();
      ui.drop.classList.add("over");
    });
  }
  ui.drop.addEventListener("dragleave", () => ui.drop.classList.remove("over"));
  ui.drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    ui.drop.classList.remove("over");
    const file = firstImage(ev.dataTransfer && ev.dataTransfer.files);
    if (file) upload(file, file.name);
  });

  // --- camera -----------------------------------------------------------
  function closeCamera() {
    if (cameraStream) cameraStream.getTracks().forEach((t) => t.stop());
    cameraStream = null;
    ui.cameraVideo.srcObject = null;
    ui.cameraBox.hidden = true;
    ui.camera.disabled = false;
  }

  ui.camera.addEventListener("click", async () => {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showRefusal({ code: "camera", message: "this page has no camera access (it needs https or localhost)" });
      return;
    }
    try {
      ui.camera.disabled = true;
      cameraStream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
      ui.cameraVideo.srcObject = cameraStream;
      ui.cameraBox.hidden = false;
      ui.snap.focus();
    } catch (e) {
      closeCamera();
      showRefusal({ code: "camera", message: `the camera could not be opened (${e.name})` });
    }
  });
  ui.cameraCancel.addEventListener("click", closeCamera);
  ui.snap.addEventListener("click", () => {
    const v = ui.cameraVideo;
    if (!v.videoWidth) return;
    const canvas = document.createElement("canvas");
    canvas.width = v.videoWidth;
    canvas.height = v.videoHeight;
    canvas.getContext("2d").drawImage(v, 0, 0);
    closeCamera();
    canvas.toBlob((blob) => blob && upload(blob, "camera snapshot"), "image/jpeg", 0.92);
  });

  // --- gallery ----------------------------------------------------------
  async function refreshGallery() {
    let reply;
    try {
      reply = await request("GET", "/v1/avatars?limit=60");
    } catch (e) {
      ui.count.textContent = `(could not be listed: ${e.message})`;
      return;
    }
    state.defaultId = reply.default_avatar;
    state.gallery = reply.avatars;
    ui.count.textContent = `(${reply.total})`;
    ui.gallery.replaceChildren(...reply.avatars.map(galleryItem));
    markSelected();
  }

  function galleryItem(a) {
    const li = document.createElement("li");
    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "thumb";
    pick.dataset.id = a.avatar_id;
    const label = a.default ? "the server's default avatar" : `avatar uploaded ${a.uploaded.replace("T", " ").replace("+00:00", " UTC")}`;
    pick.title = `${label}${a.edits_version ? ", with saved edits" : ""}`;
    pick.setAttribute("aria-label", `Use ${label}`);
    const img = document.createElement("img");
    img.src = withToken(a.thumbnail);
    img.alt = "";
    img.loading = "lazy";
    pick.append(img);
    if (a.default) pick.append(badge("default"));
    else if (a.edits_version) pick.append(badge("edited"));
    pick.addEventListener("click", () => choose(a.avatar_id));
    li.append(pick);
    if (!a.default) {
      const del = document.createElement("button");
      del.type = "button";
      del.className = "del";
      del.textContent = "×";
      del.setAttribute("aria-label", `Delete ${label}`);
      del.addEventListener("click", () => armOrDelete(del, a.avatar_id, label));
      li.append(del);
    }
    return li;
  }

  function badge(text) {
    const b = document.createElement("span");
    b.className = "badge";
    b.textContent = text;
    return b;
  }

  async function choose(avatarId) {
    select(avatarId);
    try {
      showAvatar(await request("GET", `/v1/avatars/${encodeURIComponent(avatarId)}`));
      setStatus(avatarId === state.defaultId ? "The server's default portrait. Press Start." : "Chosen. Press Start to talk as this portrait.");
    } catch (e) {
      showRefusal(e);
      await refreshGallery();
    }
  }

  // A delete loses the avatar's saved edits, so the button asks to be pressed again.
  async function armOrDelete(button, avatarId, label) {
    if (!armedDelete || armedDelete.button !== button) {
      if (armedDelete) disarm();
      button.textContent = "Delete?";
      button.classList.add("armed");
      button.setAttribute("aria-label", `Press again to delete ${label} and its edits`);
      armedDelete = { button, timer: setTimeout(disarm, 4000), label };
      return;
    }
    disarm();
    try {
      await request("DELETE", `/v1/avatars/${encodeURIComponent(avatarId)}`);
      if ((ui.avatarId.value.trim() || state.defaultId) === avatarId) {
        select(null);
        ui.img.hidden = true;
        ui.faceBox.hidden = true;
        state.preview = null;
        setStatus("Deleted. Start uses the server's default.");
      } else {
        setStatus("Deleted.");
      }
      clearRefusal();
    } catch (e) {
      showRefusal(e);
    }
    const hadFocus = document.activeElement === button;
    await refreshGallery();
    // The pressed button is gone with its item: keep keyboard focus in the gallery.
    const next = ui.gallery.querySelector('button.thumb[aria-pressed="true"]') || ui.gallery.querySelector("button.thumb");
    if (hadFocus && next) next.focus();
  }

  function disarm() {
    if (!armedDelete) return;
    clearTimeout(armedDelete.timer);
    const b = armedDelete.button;
    b.textContent = "×";
    b.classList.remove("armed");
    b.setAttribute("aria-label", `Delete ${armedDelete.label}`);
    armedDelete = null;
  }

  ui.avatarId.addEventListener("input", markSelected);
  refreshGallery().then(() => {
    if (ui.avatarId.value.trim()) choose(ui.avatarId.value.trim());
  });
})();
