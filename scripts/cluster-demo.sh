#!/usr/bin/env bash
# Train across machines, on one machine: a `fedavg server` and two `fedavg node` processes on localhost, each a
# member of one Akka.Cluster. The server evaluates and averages; node-a trains clients 0-49 and node-b clients 50-99
# of seed 001's setting (100 clients, 450 images each, the 2NN, E=10, B=32). Everything it started is stopped on
# exit, Ctrl-C included.
#
# Usage: scripts/cluster-demo.sh [fedavg server options…]   e.g. --rounds 3, --out runs/demo
# Defaults: 5 rounds, a free port, the run directory under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
script=cluster-demo
. scripts/lib/processes.sh
fedavg_build
log="$(mktemp -d)/server"
stop_on_exit "$(dirname "$log")"

# The demo's defaults, unless given: each flag may appear once. --port 0: the OS picks a free port and the server
# prints it; the nodes join that.
args=("$@")
given() { local f; for f in "${args[@]}"; do [ "$f" = "$1" ] && return 0; done; return 1; }
given --rounds || args+=(--rounds 5)
given --start-clients || args+=(--start-clients 100)
given --trainers || args+=(--trainers 1)
given --port || args+=(--port 0)
"$bin" server "${args[@]}" > >(tee "$log" | prefix 8 server) 2>&1 &
pids+=($!)
wait_for "$log" 'listening at akka\.tcp://fedavg@[^:]+:[0-9]+' "${pids[0]}" "the server"
port=$(listening_port "$log")

"$bin" node --join "127.0.0.1:$port" --clients 0-49 --node-id node-a --trainers 1 > >(prefix 8 node-a) 2>&1 &
pids+=($!)
"$bin" node --join "127.0.0.1:$port" --clients 50-99 --node-id node-b --trainers 1 > >(prefix 8 node-b) 2>&1 &
pids+=($!)

status=0
wait "${pids[0]}" || status=$?
for pid in "${pids[@]:1}"; do wait "$pid" || status=$(( status == 0 ? $? : status )); done
pids=()
exit "$status"
