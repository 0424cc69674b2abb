# Shared by scripts/serve.sh and scripts/test.sh: idempotent installs, so a fresh
# machine and a warm one run the same commands.

PYTHON_BIN="${PYTHON_BIN:-}"
if [ -z "$PYTHON_BIN" ]; then
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON_BIN="$candidate"; break; fi
  done
fi

log() { printf '\033[1m[avatar-rt]\033[0m %s\n' "$*" >&2; }

# ensure_system_packages PKG...: install missing Debian packages (needs root or sudo).
ensure_system_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      log "missing system packages: ${missing[*]} — install them as root (apt-get install ${missing[*]})"
      return 1
    fi
  fi
  log "installing system packages: ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_venv EXTRAS: .venv with the project installed (editable) and the given extras.
# Reinstalls only when pyproject.toml or the extras changed.
ensure_venv() {
  local extras="${1:-}"
  local spec="."
  [ -n "$extras" ] && spec=".[$extras]"
  local py_version
  py_version=$("$PYTHON_BIN" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  case "$py_version" in
    3.11|3.12) ;;
    *) log "Python 3.11 or 3.12 is needed (found $PYTHON_BIN = $py_version); set PYTHON_BIN"; return 1 ;;
  esac
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv with $PYTHON_BIN ($py_version)"
    "$PYTHON_BIN" -m venv .venv
  fi
  local hash
  hash=$(sha256sum < pyproject.toml | cut -c1-16)
  local stamp=".venv/.installed-$hash-${extras:-base}"
  # Any install of the current pyproject.toml covers the base package (extras only add).
  if [ -z "$extras" ] && compgen -G ".venv/.installed-$hash-*" >/dev/null; then return 0; fi
  if [ ! -f "$stamp" ]; then
    log "installing Python dependencies ($spec) — the first time takes about a minute"
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
}

# What the lip-sync training and its benchmark speak with: espeak-ng, Festival (kal and the voices of five more
# languages), flite, and real recordings with their texts (Asterisk's Allison prompts; the held-out real speakers
# of pocketsphinx-testdata, alsa-utils, klettres-data, ktuberling-data, tuxpaint-stamps-default and
# warzone2100-data). Never festvox-us-slt-hts or festvox-kdlpc16k: they are reserved for independent evaluation.
LIPSYNC_VOICE_PACKAGES=(espeak-ng wamerican festival festvox-kallpc16k flite festvox-itapc16k festvox-italp16k
  festvox-ca-ona-hts festvox-czech-dita festvox-czech-machac festvox-suopuhe-lj festvox-suopuhe-mv festvox-ru
  asterisk-core-sounds-en asterisk-core-sounds-en-g722 pocketsphinx-testdata alsa-utils)
LIPSYNC_HELDOUT_SPEECH_PACKAGES=(klettres-data ktuberling-data tuxpaint-stamps-default warzone2100-data)

# The agent-framework adapters (avatar_rt/adapters/) run in the agent's process, in their own venv: Pipecat
# and LiveKit Agents need protobuf ≥ 5 (and Pillow ≥ 11, onnxruntime ≥ 1.24), the engine's MediaPipe
# 0.10.21 needs protobuf 4, so one environment cannot hold both. The adapters only use avatar_rt.client and
# aiortc, so avatar_rt goes in without its engine dependencies (--no-deps). Install takes ~1.5 min of
# downloads on a quiet machine (4.7 min wall on the loaded 2-core VM, 30 s of CPU).
ADAPTER_PACKAGES=("pipecat-ai==1.14.0" "livekit-agents==1.8.9" "aiortc>=1.9,<2" "av>=12,<19" "aiohttp>=3.9,<4"
  "numpy>=1.26,<2" "pytest>=8" "pytest-timeout>=2.3")

# ensure_adapters_venv: .venv-adapters with the pinned frameworks and this checkout (editable, no deps).
ensure_adapters_venv() {
  local hash
  hash=$( (cat pyproject.toml; echo "${ADAPTER_PACKAGES[*]}") | sha256sum | cut -c1-16)
  if [ ! -x .venv-adapters/bin/python ]; then
    log "creating .venv-adapters with $PYTHON_BIN (Pipecat and LiveKit Agents, for the adapter tests)"
    "$PYTHON_BIN" -m venv .venv-adapters
  fi
  if [ ! -f ".venv-adapters/.installed-$hash" ]; then
    log "installing the agent frameworks (${ADAPTER_PACKAGES[0]}, ${ADAPTER_PACKAGES[1]}) — the first time takes a few minutes"
    .venv-adapters/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    .venv-adapters/bin/python -m pip install -q --disable-pip-version-check "${ADAPTER_PACKAGES[@]}"
    .venv-adapters/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
    rm -f .venv-adapters/.installed-*
    touch ".venv-adapters/.installed-$hash"
  fi
}
