#!/usr/bin/env bash
# The figures of docs/faults.md, each run a real `fedavg simulate` with `fedavg.faults` (docs/faults.md):
#   1. "Faults the runtime survives": one fault per run on a small federation (10 clients, mnist, seed001-2nn,
#      iid:600, E=1, 5 rounds, round-timeout 3s, seed 1), next to the fault-free run with the same seed; the ×100
#      update also against FedAvg with the server's norm rule (--max-update-norm 3);
#   2. "Byzantine clients": 50 clients, mnist, seed001-2nn, iid:600, E=1, B=32, lr 0.05, 20 rounds, seeds 1 and 2, 20% of the
#      clients (seeded, the same every round) sending sign-flip, scale:10 or noise:1 updates, under fedavg, median,
#      trimmed-mean (β 0.2), krum (f 10), multi-krum (f 10, m 30) and bulyan (f 10), against fault-free fedavg.
#   3. "Non-IID": 50 clients, classes:2, E=5, 60 rounds, seed 1: fedavg, fedprox (μ 0.01), fedavgm (momentum 0.9),
#      fedadam (η 0.01, η_l 0.05, τ 0.001): rounds to 0.95 and final accuracy.
# Usage: scripts/bench-faults.sh [--out FILE] [--only survive|byzantine|noniid]  (rewrites the sections between the
# faults markers of FILE, default docs/faults.md). About 50 minutes here (2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/faults.md
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift ;;
    --only) only="$2"; shift ;;
    *) echo "bench-faults.sh: unknown argument '$1' (use --out FILE, --only survive|byzantine|noniid)" >&2; exit 2 ;;
  esac
  shift
done
scripts/install-data.sh >/dev/null
scripts/fedavg.sh --help >/dev/null  # build once
bin=src/FedAvg.Cli/bin/Release/net10.0/fedavg
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# run NAME STRATEGY-HOCON FAULTS-HOCON ARGS…: one simulate run into $work/NAME
run() {
  local name="$1" strategy="$2" faults="$3"; shift 3
  printf 'fedavg { strategy { %s }\n faults = [ %s ] }\n' "$strategy" "$faults" >"$work/$name.conf"
  "$bin" simulate --config "$work/$name.conf" --out "$work/$name" --force "$@" >"$work/$name.log" 2>&1 \
    || { echo "bench-faults: run $name failed:" >&2; tail -20 "$work/$name.log" >&2; exit 1; }
  echo "  $name: $(python3 -c "import json;print(json.load(open('$work/$name/summary.json'))['final_test_accuracy'])")" >&2
}

if [ "$only" = "" ] || [ "$only" = survive ]; then
  small=(--dataset mnist --model seed001-2nn --clients 10 --partition iid:600 --rounds 5 --local-epochs 1 --batch 32
         --lr 0.05 --seed 1 --round-timeout 3s)
  echo "survive: 10 clients, 5 rounds" >&2
  run none 'name = fedavg' '' "${small[@]}"
  run crash 'name = fedavg' '{ behaviour = crash, clients = [2], to-round = 2 }' "${small[@]}"
  run stop 'name = fedavg' '{ behaviour = stop, clients = [3], from-round = 2 }' "${small[@]}"
  run delay 'name = fedavg' '{ behaviour = "delay:20s", clients = [4] }' "${small[@]}"
  run stall 'name = fedavg' '{ behaviour = stall, clients = [4], from-round = 3 }' "${small[@]}"
  run drop 'name = fedavg' '{ behaviour = drop, clients = [5] }' "${small[@]}"
  run twice 'name = fedavg' '{ behaviour = twice, clients = [6] }' "${small[@]}"
  run stale 'name = fedavg' '{ behaviour = stale, clients = [7] }' "${small[@]}"
  run nan 'name = fedavg' '{ behaviour = nan, clients = [1] }' "${small[@]}"
  run inf 'name = fedavg' '{ behaviour = inf, clients = [1], probability = 0.5 }' "${small[@]}"
  run wrong-length 'name = fedavg' '{ behaviour = wrong-length, clients = [8] }' "${small[@]}"
  run samples-0 'name = fedavg' '{ behaviour = "samples:0", clients = [9] }' "${small[@]}"
  run samples-1e6 'name = fedavg' '{ behaviour = "samples:1000000", clients = [9] }' "${small[@]}"
  run scale100-fedavg 'name = fedavg' '{ behaviour = "scale:100", clients = [0] }' "${small[@]}"
  run scale100-fedavg-norm 'name = fedavg' '{ behaviour = "scale:100", clients = [0] }' "${small[@]}" --max-update-norm 3
  run none-median 'name = median' '' "${small[@]}"
  run scale100-median 'name = median' '{ behaviour = "scale:100", clients = [0] }' "${small[@]}"
fi

if [ "$only" = "" ] || [ "$only" = byzantine ]; then
  # two seeds: each picks its own 10 liars (fraction = 0.2 is drawn from the seed), shards and initial weights
  for seed in 1 2; do
    big=(--dataset mnist --model seed001-2nn --clients 50 --partition iid:600 --rounds 20 --local-epochs 1 --batch 32
         --lr 0.05 --seed "$seed")
    echo "byzantine: 50 clients, 20 rounds, seed $seed" >&2
    run "b-none-fedavg-s$seed" 'name = fedavg' '' "${big[@]}"
    for attack in sign-flip scale:10 noise:1; do
      for s in 'fedavg|name = fedavg' 'median|name = median' 'trimmed-mean|name = trimmed-mean, beta = 0.2' \
               'krum|name = krum, f = 10' 'multi-krum|name = multi-krum, f = 10, m = 30' 'bulyan|name = bulyan, f = 10'; do
        run "b-${attack/:/}-${s%%|*}-s$seed" "${s#*|}" "{ behaviour = \"$attack\", fraction = 0.2 }" "${big[@]}"
      done
    done
  done
fi

if [ "$only" = "" ] || [ "$only" = noniid ]; then
  # 60 rounds: at 20 none reached 0.95 (the best 0.935), so "rounds to 0.95" had no figure
  noniid=(--dataset mnist --model seed001-2nn --clients 50 --partition classes:2 --rounds 60 --local-epochs 5 --batch 32
          --lr 0.05 --seed 1)
  echo "non-iid: 50 clients, classes:2, E=5, 60 rounds" >&2
  run n-fedavg 'name = fedavg' '' "${noniid[@]}"
  run n-fedprox 'name = fedprox, mu = 0.01' '' "${noniid[@]}"
  run n-fedavgm 'name = fedavgm, server-lr = 1.0, server-momentum = 0.9' '' "${noniid[@]}"
  run n-fedadam 'name = fedadam, eta = 0.01, eta-l = 0.05, tau = 0.001' '' "${noniid[@]}"
fi

python3 scripts/render_faults.py "$work" "$out" "$only"
echo "bench-faults: wrote $out" >&2
