#!/usr/bin/env bash
# Train across machines, on one machine: a `fedavg server` and two `fedavg node` processes on localhost, each a
# member of one Akka.Cluster. The server evaluates and averages; node-a trains clients 0-49 and node-b clients 50-99
# of seed 001's setting (100 clients, 450 images each, the 2NN, E=10, B=32). Everything it started is stopped on
# exit, Ctrl-C included.
#
# Usage: scripts/cluster-demo.sh [--tls] [fedavg server options…]   e.g. --rounds 3, --out runs/demo
# Defaults: 5 rounds, a free port, the run directory under runs/.
# --tls: the README's "Train across machines" flow on localhost: `fedavg certs init`, `fedavg certs issue` for the
# server and each node (a password file of its own), then every process with mutual TLS; a node's id is then its
# certificate's name (node-a, node-b). The CA and bundles live in a temporary directory removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
script=cluster-demo
. scripts/lib/processes.sh
tls=false
if [ "${1:-}" = "--tls" ]; then tls=true; shift; fi
fedavg_build
log="$(mktemp -d)/server"
stop_on_exit "$(dirname "$log")"

# Each process's transport flags: none in plaintext (allowed on loopback); with --tls, its bundle
server_tls=() node_a_tls=() node_b_tls=() node_a_id=(--node-id node-a) node_b_id=(--node-id node-b)
if $tls; then
  certs="$(dirname "$log")/certs"
  mkdir -m 700 "$certs"
  head -c 24 /dev/urandom | base64 > "$certs/password.txt"
  "$bin" certs init --out "$certs/ca" --name demo | prefix 8 certs
  for who in server node-a node-b; do
    role=client; [ "$who" = server ] && role=server
    "$bin" certs issue "$who" --role "$role" --ca "$certs/ca" --out "$certs/$who" --password-file "$certs/password.txt" | prefix 8 certs
  done
  flags() { echo --tls-cert "$certs/$1/$1.pfx" --tls-ca "$certs/$1/ca.crt" --tls-password-file "$certs/password.txt"; }
  read -r -a server_tls <<< "$(flags server)"
  read -r -a node_a_tls <<< "$(flags node-a)"
  read -r -a node_b_tls <<< "$(flags node-b)"
  node_a_id=() node_b_id=() # with TLS the id is the certificate's name
fi

# The demo's defaults, unless given: each flag may appear once. --port 0: the OS picks a free port and the server
# prints it; the nodes join that.
args=("$@")
given() { local f; for f in "${args[@]}"; do [ "$f" = "$1" ] && return 0; done; return 1; }
given --rounds || args+=(--rounds 5)
given --start-clients || args+=(--start-clients 100)
given --trainers || args+=(--trainers 1)
given --port || args+=(--port 0)
"$bin" server "${args[@]}" "${server_tls[@]}" > >(tee "$log" | prefix 8 server) 2>&1 &
pids+=($!)
wait_for "$log" 'listening at akka(\.ssl)?\.tcp://fedavg@[^:]+:[0-9]+' "${pids[0]}" "the server"
port=$(listening_port "$log")

"$bin" node --join "127.0.0.1:$port" --clients 0-49 "${node_a_id[@]}" --trainers 1 "${node_a_tls[@]}" > >(prefix 8 node-a) 2>&1 &
pids+=($!)
"$bin" node --join "127.0.0.1:$port" --clients 50-99 "${node_b_id[@]}" --trainers 1 "${node_b_tls[@]}" > >(prefix 8 node-b) 2>&1 &
pids+=($!)

status=0
wait "${pids[0]}" || status=$?
for pid in "${pids[@]:1}"; do wait "$pid" || status=$(( status == 0 ? $? : status )); done
pids=()
exit "$status"
