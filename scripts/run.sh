#!/usr/bin/env bash
# The main job with sensible defaults: installs the data if needed, builds, and runs a federation with
# seed 001's setting (hocon/simulation.conf). Extra arguments are passed on to `fedavg simulate`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-data.sh
exec scripts/fedavg.sh simulate "$@"
