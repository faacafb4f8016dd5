# Sourced by the demo scripts that start `fedavg` processes (cluster-demo.sh, standby-demo.sh), from the repository's
# root: builds once, remembers every process started, and stops them all on exit, Ctrl-C included.
#   fedavg_build                       installs the data if missing and builds; sets $bin
#   stop_on_exit DIR                   on exit: SIGTERM to each pid in $pids, wait for them, remove DIR (a temp dir)
#   prefix WIDTH NAME                  each line of stdin as "[NAME] line", NAME padded to WIDTH
#   wait_for FILE REGEX PID WHAT       until FILE has a line matching REGEX, while PID runs (at most 5 minutes)
#   listening_port FILE                the port of the first "listening at akka[.ssl].tcp://fedavg@HOST:PORT" in FILE
# $script names the calling script in errors.

fedavg_build() {
  scripts/install-data.sh >/dev/null
  scripts/fedavg.sh --help >/dev/null   # builds once, so that every process starts from the same build
  bin=src/FedAvg.Cli/bin/Release/net10.0/fedavg
}

pids=()
stop_on_exit() {
  temp_dir="$1"
  trap '_stop_all' EXIT
  trap 'exit 130' INT TERM
}
_stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$temp_dir"
}

prefix() { while IFS= read -r line; do printf "%-$1s %s\n" "[$2]" "$line"; done; }

wait_for() {
  for _ in $(seq 1 1500); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "$script: $4 exited first" >&2; exit 1; }
    sleep 0.2
  done
  echo "$script: $4 did not say /$2/ within 5 minutes" >&2
  exit 1
}

listening_port() { grep -oE 'listening at akka(\.ssl)?\.tcp://fedavg@[^:]+:[0-9]+' "$1" | head -1 | grep -oE '[0-9]+$'; }
