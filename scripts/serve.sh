#!/usr/bin/env bash
# Install what the server needs (first run only) and start it with the bundled portrait.
# Extra arguments go to `avatar-rt serve` (see `avatar-rt serve --help`), e.g. --port 9000.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
# The text extra builds the free-text edit model once into the local cache (about 10 s);
# if that fails the server still runs, with free-text edits answering 503.
ensure_venv "text"
if ! .venv/bin/python -c "from avatar_rt.edits.text_edits import model_ready; raise SystemExit(0 if model_ready() else 1)" 2>/dev/null; then
  log "building the free-text edit model (once)"
  .venv/bin/python -m export.text_model >/dev/null || log "could not build the free-text model; text edits will be unavailable"
fi
exec .venv/bin/avatar-rt serve "$@"
