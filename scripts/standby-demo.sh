#!/usr/bin/env bash
# A standby server taking over, on one machine: a `fedavg server`, a standby (`fedavg server --standby-of`, the same
# run settings) and two `fedavg node` processes on localhost. After round R (--kill-after, default 2) the active
# server is SIGKILLed, as if its machine were lost; the cluster downs it, the coordinator moves to the standby, which
# goes on from its replica of round R's checkpoint, and the nodes train on without restarting. At the end the
# standby's checkpoint is compared, byte for byte, with `fedavg simulate`'s of the same settings. Everything it
# started is stopped on exit, Ctrl-C included.
#
# Usage: scripts/standby-demo.sh [--rounds N] [--kill-after R]     (defaults: 6 rounds, kill after round 2)
# The run directories are under runs/standby-demo-TIME/: active/, standby/ and simulate/.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=6
kill_after=2
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --kill-after) kill_after="$2"; shift 2 ;;
    *) echo "standby-demo: unknown option $1 (--rounds N, --kill-after R)" >&2; exit 2 ;;
  esac
done
[[ "$rounds" =~ ^[0-9]+$ && "$kill_after" =~ ^[0-9]+$ && "$kill_after" -ge 1 && "$kill_after" -lt "$rounds" ]] ||
  { echo "standby-demo: need 1 <= --kill-after < --rounds (got $kill_after and $rounds)" >&2; exit 2; }
script=standby-demo
. scripts/lib/processes.sh
fedavg_build
out="runs/standby-demo-$(date +%Y%m%d-%H%M%S)"

# 10 clients of MNIST's 2NN, IID, E=1: a round takes seconds, so the takeover is the demo's longest part
run=(--clients 10 --partition iid --local-epochs 1 --batch 32 --lr 0.05 --momentum 0.5 --rounds "$rounds" --seed 5 --trainers 1)

logs="$(mktemp -d)"
stop_on_exit "$logs"

"$bin" server "${run[@]}" --start-clients 10 --port 0 --out "$out/active" > >(tee "$logs/active" | prefix 9 active) 2>&1 &
active=$!
pids+=("$active")
wait_for "$logs/active" 'listening at akka\.tcp://fedavg@[^:]+:[0-9]+' "$active" "the server"
port=$(listening_port "$logs/active")

# the standby joins before the nodes: it is older than they are (docs/architecture.md, "Downing")
"$bin" server "${run[@]}" --start-clients 10 --port 0 --standby-of "127.0.0.1:$port" --out "$out/standby" \
  > >(tee "$logs/standby" | prefix 9 standby) 2>&1 &
standby=$!
pids+=("$standby")
wait_for "$logs/standby" 'standing by for the server' "$standby" "the standby"
standby_port=$(grep -oE 'standby at akka\.tcp://fedavg@[^:]+:[0-9]+' "$logs/standby" | grep -oE '[0-9]+$')

# both addresses, the server first: a node that starts or joins again after the takeover finds the cluster
join="127.0.0.1:$port,127.0.0.1:$standby_port"
"$bin" node --join "$join" --clients 0-4 --node-id node-a --trainers 1 > >(prefix 9 node-a) 2>&1 &
pids+=($!)
"$bin" node --join "$join" --clients 5-9 --node-id node-b --trainers 1 > >(prefix 9 node-b) 2>&1 &
pids+=($!)

# round R's replica or a later one: a feed that reads the checkpoint late sends the round after, with both records
kept_at_least() { grep -oE 'kept the replica of round [0-9]+$' "$1" | grep -oE '[0-9]+$' | awk -v r="$2" '$1 >= r { found = 1 } END { exit !found }'; }
for _ in $(seq 1 1500); do
  kept_at_least "$logs/standby" "$kill_after" && break
  kill -0 "$standby" 2>/dev/null || { echo "standby-demo: the standby exited first" >&2; exit 1; }
  sleep 0.2
done
kept_at_least "$logs/standby" "$kill_after" || { echo "standby-demo: no replica of round $kill_after within 5 minutes" >&2; exit 1; }
echo "[demo]    $(date +%H:%M:%S) SIGKILL to the active server (pid $active) after round $kill_after"
killed=$(date +%s.%N)
kill -KILL "$active"
wait "$active" 2>/dev/null || true
wait_for "$logs/standby" 'taking over the coordinator' "$standby" "the standby"
awk -v from="$killed" -v to="$(date +%s.%N)" \
  'BEGIN { printf "[demo]    the coordinator runs on the standby %.1f s after the SIGKILL (the log polled every 0.2 s)\n", to - from }'

status=0
for pid in "${pids[@]:1}"; do wait "$pid" || status=$(( status == 0 ? $? : status )); done
pids=()
[ "$status" = 0 ] || { echo "standby-demo: a process exited $status" >&2; exit "$status"; }

echo "[demo]    the same run in one process, for comparison: fedavg simulate ${run[*]}"
"$bin" simulate "${run[@]}" --out "$out/simulate" > "$logs/simulate" 2>&1 ||
  { cat "$logs/simulate" >&2; echo "standby-demo: fedavg simulate failed" >&2; exit 1; }
if cmp -s "$out/standby/checkpoint.bin" "$out/simulate/checkpoint.bin"; then
  echo "[demo]    $out/standby/checkpoint.bin is byte-identical to fedavg simulate's: the takeover lost nothing"
else
  echo "standby-demo: the standby's final checkpoint differs from fedavg simulate's" >&2
  exit 1
fi
