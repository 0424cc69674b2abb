#!/usr/bin/env bash
# Install what the tests need (system packages, the dev extras) and run the whole suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k loopback -s
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
# espeak-ng synthesizes the test speech; chromium is the browser the end-to-end test drives.
# festival (kal voice) and wamerican (word list) feed the lip-sync data generator the tests run; flite and
# the other Festival voices are the lip sync's other synthesizers (training and held-out evaluation voices);
# the Asterisk prompts (Allison, with their texts) and pocketsphinx-testdata are real speech with transcripts.
ensure_system_packages chromium fonts-dejavu-core "${LIPSYNC_VOICE_PACKAGES[@]}"
# The train extra brings torch (a local CPU build): the tests run a tiny version of the model training.
ensure_venv "dev,train"
# The Pipecat and LiveKit adapters are tested in their own venv (see ensure_adapters_venv in scripts/lib.sh),
# against an engine served from .venv; with arguments (a selection) only the main suite runs.
.venv/bin/python -m pytest -ra --ignore=tests/adapters "$@"
if [ $# -eq 0 ]; then
  ensure_adapters_venv
  .venv-adapters/bin/python -m pytest -ra -p no:cacheprovider tests/adapters
fi
