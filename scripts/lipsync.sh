#!/usr/bin/env bash
# Install what the lip-sync training and its benchmark need (voices, real recordings, the train extra), then run
# one of them:
#   scripts/lipsync.sh train [train_all flags]     # python -m export.lipsync.train_all: everything from scratch
#   scripts/lipsync.sh bench [lipsync.py flags]    # python benchmarks/lipsync.py: held-out voices and real speech
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
what="${1:-}"
shift || true
ensure_system_packages "${LIPSYNC_VOICE_PACKAGES[@]}" "${LIPSYNC_HELDOUT_SPEECH_PACKAGES[@]}"
ensure_venv "dev,train"
case "$what" in
  train) exec .venv/bin/python -m export.lipsync.train_all "$@" ;;
  bench) exec .venv/bin/python benchmarks/lipsync.py "$@" ;;
  *) log "usage: scripts/lipsync.sh train|bench [flags]"; exit 2 ;;
esac
