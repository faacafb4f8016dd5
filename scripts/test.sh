#!/usr/bin/env bash
# Runs every test of the solution on the real datasets (installed first if needed) and prints one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
# One data directory for the installer and every test (the README's fault-kit example reads $FEDAVG_DATA, as a user's test would)
export FEDAVG_DATA="${FEDAVG_DATA:-$PWD/data}"
scripts/install-data.sh
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
dotnet test FedAvg.Actors.sln -c Release 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# dotnet test prints one "Passed!/Failed! - Failed: F, Passed: P, ..." line per test assembly: add them up.
summary=$(grep -E '(Passed|Failed)! +- +Failed: ' "$log" | sed -E 's/.*Failed: +([0-9]+), Passed: +([0-9]+), Skipped: +([0-9]+).*/\1 \2 \3/' |
  awk '{f+=$1; p+=$2; s+=$3; n++} END {if (n) printf "%d passed, %d failed, %d skipped\n", p, f, s}')
if [ -z "$summary" ]; then
  echo "test.sh: no test results found (dotnet test exited $status)" >&2
  exit $(( status == 0 ? 1 : status ))
fi
echo "tests: $summary"
exit "$status"
