#!/usr/bin/env bash
# The main job with sensible defaults: installs the data if needed, builds, and runs the seed 001 baseline.
# Extra arguments are passed on to `fedavg centralized`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-data.sh
exec scripts/fedavg.sh centralized "$@"
