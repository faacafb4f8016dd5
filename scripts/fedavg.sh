#!/usr/bin/env bash
# Builds the `fedavg` command (Release; incremental, so cheap when nothing changed) and runs it with the given arguments.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
log="$(mktemp)"
if ! dotnet build "$root/src/FedAvg.Cli/FedAvg.Cli.csproj" -c Release -nologo -v quiet >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
exec "$root/src/FedAvg.Cli/bin/Release/net10.0/fedavg" "$@"
