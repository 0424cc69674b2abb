#!/usr/bin/env bash
# The customer-service agent example (examples/customer_service_agent.py): installs what it needs (first run
# only: espeak-ng, .venv), starts a server, prints the page to open and answers the questions you type.
# Extra arguments go to the example, e.g. --url http://127.0.0.1:8080 to use a running server.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_system_packages espeak-ng
ensure_venv ""
exec .venv/bin/python examples/customer_service_agent.py "$@"
