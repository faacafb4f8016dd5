#!/usr/bin/env bash
# Builds the `fedavg` command (Release; incremental, so cheap when nothing changed) and runs it with the given arguments.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dotnet build "$root/src/FedAvg.Cli/FedAvg.Cli.csproj" -c Release -v quiet -nologo -clp:NoSummary >&2
exec "$root/src/FedAvg.Cli/bin/Release/net10.0/fedavg" "$@"
