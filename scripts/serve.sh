#!/usr/bin/env bash
# Install what the server needs (first run only) and start it with the bundled portrait.
# Extra arguments go to `avatar-rt serve` (see `avatar-rt serve --help`), e.g. --port 9000.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_venv ""
exec .venv/bin/avatar-rt serve "$@"
