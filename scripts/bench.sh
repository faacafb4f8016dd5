#!/usr/bin/env bash
# Runs every benchmark figure of docs/benchmarks.md, ours next to its anchor measured in the same run, and
# rewrites that file. Usage: scripts/bench.sh [--quick] [--out FILE]
#   --quick   fewer sizes and samples (under 3 minutes here); the full suite takes under 20.
# Installs Debian's python3-torch and OpenBLAS for the PyTorch reference (never needed by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
out=docs/benchmarks.md
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out="$2"; shift ;;
    *) echo "bench.sh: unknown argument '$1' (use --quick, --out FILE)" >&2; exit 2 ;;
  esac
  shift
done

py=/usr/bin/python3
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "bench: installing Debian's python3-torch and OpenBLAS for the PyTorch reference …"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y -qq python3-torch libopenblas0-pthread >/dev/null ||
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq python3-torch libopenblas0-pthread >/dev/null; }
fi
# Debian's python3-torch links the generic BLAS unless OpenBLAS is the alternative (its MLP is 15x slower without).
openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
if [ -e "$openblas" ] && [ "$(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null)" != "$openblas" ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo update-alternatives --set libblas.so.3-x86_64-linux-gnu "$openblas" >/dev/null
fi
export OPENBLAS_NUM_THREADS=1  # else OpenBLAS threads fight libtorch's

scripts/install-data.sh >/dev/null
scripts/fedavg.sh --help >/dev/null  # build once
fedavg=src/FedAvg.Cli/bin/Release/net10.0/fedavg
ref="$py scripts/reference/fedavg_reference.py"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"
: >"$results"

if [ $quick = 1 ]; then
  samples=6000; repeats=3; pairs=1; batches="64"; thread_counts="1"; round_repeats=1; memory_repeats=1; memory_clients="10 100 1000"; scale_clients="10 100 1000"; scale_rounds=4
else
  samples=24000; repeats=3; pairs=2; batches="32 64"; thread_counts="1 2"; round_repeats=3; memory_repeats=3; memory_clients="10 100 1000 10000"; scale_clients="10 100 1000 10000"; scale_rounds=6
fi

steps=0
for _ in seed002-cnn seed001-2nn; do for _ in $batches; do for _ in $thread_counts; do steps=$((steps + 2 * pairs)); done; steps=$((steps + 1)); done; done
steps=$((steps + 2 + 1 + $(echo $memory_clients | wc -w) + $(echo $scale_clients | wc -w)))
step=0
started=$(date +%s)
progress() { step=$((step + 1)); printf '[%2d/%d %4ds] %s\n' "$step" "$steps" "$(( $(date +%s) - started ))" "$*"; }
record() { tee -a "$results" | sed 's/^/    /'; }

# 1. Local training throughput: ours (P trainers × T threads) and PyTorch with the same thread budget, alternated
# so that both see the same spells of load from the machine's neighbours.
for model in seed002-cnn seed001-2nn; do
  for batch in $batches; do
    for threads in $thread_counts; do
      for pair in $(seq $pairs); do
        progress "train $model B=$batch T=$threads: FedAvg.Actors ($pair/$pairs)"
        $fedavg bench train --model "$model" --batch "$batch" --threads-per-trainer "$threads" --samples $samples --repeats $repeats | record
        progress "train $model B=$batch T=$threads: PyTorch ($pair/$pairs)"
        $ref throughput --model "$model" --batch "$batch" --threads "$threads" --samples $samples --repeats $repeats | record
      done
    done
    progress "train $model B=$batch: FedAvg.Actors P=2 trainers × T=1"
    $fedavg bench train --model "$model" --batch "$batch" --trainers 2 --threads-per-trainer 1 --samples $samples --repeats $repeats | record
  done
done

# 2. One FedAvg round of seed 001's setting (100 clients × 450 samples, E=10, B=32): ours vs the PyTorch loop.
$fedavg partition --partition iid-balanced:450 --clients 100 --seed 1 --out "$work/seed001-parts.json" >/dev/null
progress "seed 001 round: FedAvg.Actors (defaults: P=$(nproc) × T=1), $round_repeats run(s)"
for i in $(seq $round_repeats); do
  $fedavg simulate --rounds 1 --out "$work/round-$i" >/dev/null
  tail -n 1 "$work/round-$i/rounds.csv" | awk -F, -v p="$(nproc)" '{printf "{\"bench\":\"round\",\"impl\":\"fedavg-actors\",\"round_s\":%s,\"training_s\":%s,\"trainer_busy_s\":%s,\"aggregation_s\":%s,\"evaluation_s\":%s,\"test_accuracy\":%s,\"trainers\":%d}\n", $13, $9, $10, $11, $12, $7, p}' | record
done
progress "seed 001 round: PyTorch reference loop, T=1 and T=$(nproc)"
$ref rounds --partitions "$work/seed001-parts.json" --rounds $round_repeats --threads 1 | record
$ref rounds --partitions "$work/seed001-parts.json" --rounds $round_repeats --threads "$(nproc)" | record

# 3. Aggregation of 100 mcmahan-cnn updates against a memory copy of the same bytes.
progress "aggregate 100 × mcmahan-cnn updates vs memcpy"
$fedavg bench aggregate --model mcmahan-cnn --updates 100 --repeats 5 | record

# 4. Peak memory with mcmahan-cnn, C = 0.1, one round of E=1, B=10.
for k in $memory_clients; do
  progress "peak RSS: mcmahan-cnn, K=$k, C=0.1, $memory_repeats run(s)"
  for i in $(seq $memory_repeats); do
    $fedavg simulate --model mcmahan-cnn --clients "$k" --fraction 0.1 --partition iid --local-epochs 1 --batch 10 \
      --lr 0.05 --momentum 0 --rounds 1 --out "$work/mem-$k-$i" >/dev/null
    "$py" -c "import json,sys; s=json.load(open('$work/mem-$k-$i/summary.json')); print(json.dumps({'bench':'memory','clients':$k,'peak_rss_mb':s['peak_rss_mb'],'wall_s':s['wall_seconds']}))" | record
  done
done

# 5. Round time per sampled client as clients grow (seed000-cnn, 5 samples per client, one step each, C = 1).
for k in $scale_clients; do
  rounds=$scale_rounds
  # A round of 10 or 100 such clients takes 0.1-0.2 s in all: more of them cost little and steady the median.
  [ "$k" -le 100 ] && rounds=$((scale_rounds * 4))
  progress "scaling: K=$k clients, all sampled, one step each, $rounds rounds"
  $fedavg simulate --model seed000-cnn --clients "$k" --fraction 1 --partition iid:5 --local-epochs 1 --batch 5 \
    --lr 0.05 --momentum 0 --rounds "$rounds" --out "$work/scale-$k" >/dev/null
  # A round's training phase at 10 clients lasts ~10 ms, at the mercy of a scheduler tick: median of rounds 2..N.
  "$py" - "$work/scale-$k/rounds.csv" "$k" <<'PY' | record
import csv, json, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))[1:]
training = statistics.median(float(r["training_s"]) for r in rows)
print(json.dumps({"bench": "scale", "clients": int(sys.argv[2]), "rounds": len(rows), "training_s": round(training, 4),
                  "round_s": round(statistics.median(float(r["round_s"]) for r in rows), 4),
                  "per_client_ms": round(1000 * training / int(rows[0]["sampled"]), 4)}))
PY
done

total=$(( $(date +%s) - started ))
"$py" scripts/reference/render_benchmarks.py "$results" "$out" --quick "$quick" --seconds "$total"
# The raw lines are also kept at the end of $out, so the report can be re-rendered without re-measuring.
echo "bench: wrote $out in ${total}s"
