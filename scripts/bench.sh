#!/usr/bin/env bash
# Benchmarks kvd against etcd v3.7.3 on this machine in the same run, as a
# single member and as a 3-member cluster, and prints for each scenario the
# median req/s, p50 and p99 of ROUNDS rounds with the kvd/etcd ratios.
#
# For each cluster size in MEMBERS, a kvd cluster and an etcd cluster of that
# size start side by side on free 127.0.0.1 ports with fresh data dirs; the
# load (bin/kvbench, spread over all members' endpoints) goes to one system
# at a time, alternating round by round so machine noise hits both alike.
# Both clusters stop before the next size starts, and everything this script
# started is stopped when it exits.
#
#   ROUNDS=3 TOTAL=20000 MEMBERS="1 3" scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
TOTAL=${TOTAL:-20000}
MEMBERS=${MEMBERS:-1 3}
# The Makefile exports KVD_ETCD_BIN; without it, look where `make tools` builds.
ETCD=${KVD_ETCD_BIN:-$HOME/.cache/kvd-tools/$(sha256sum tools/etcdref/go.sum | cut -c1-12)/etcd}
[ -x "$ETCD" ] || { echo "bench.sh: no etcd binary at $ETCD (run make tools, or set KVD_ETCD_BIN)" >&2; exit 1; }
KVD=bin/kvd
BENCH=bin/kvbench
SYSTEMS=(kvd etcd)
go build -o bin/ ./cmd/kvd ./cmd/kvbench

work=$(mktemp -d)
declare -A eps     # system -> comma-separated client endpoints of its running cluster
declare -A running # system -> pids of its running cluster's members

# cleanup stops whatever is still running, however the script ends. Stopped
# clusters have left running, so a pid the system may have reused since is
# never signalled.
cleanup() {
  local sys
  for sys in "${!running[@]}"; do stop_cluster "$sys"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_ports N prints N distinct free ports, holding each until all are found.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
EOF
}

# start_cluster SYSTEM BINARY N starts an N-member cluster of SYSTEM, waits
# until every member is healthy and records its endpoints in eps[SYSTEM]. It
# runs in this shell (not in $(...)) so that running reaches the exit trap.
start_cluster() {
  local sys=$1 bin=$2 n=$3 i ports cluster="" list="" c p name
  read -r -a ports <<<"$(free_ports $((2 * n)))"
  for i in $(seq 0 $((n - 1))); do
    cluster+="${cluster:+,}$sys$i=http://127.0.0.1:${ports[n + i]}"
  done
  running[$sys]=""
  for i in $(seq 0 $((n - 1))); do
    name=$sys$i c="http://127.0.0.1:${ports[i]}" p="http://127.0.0.1:${ports[n + i]}"
    "$bin" --name "$name" --data-dir "$work/$n/$name" \
      --listen-client-urls "$c" --advertise-client-urls "$c" \
      --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token "bench-$sys-$n" --log-level error >"$work/$n-$name.log" 2>&1 &
    running[$sys]+=" $!"
    list+="${list:+,}127.0.0.1:${ports[i]}"
  done
  for i in $(seq 0 $((n - 1))); do
    wait_healthy "$sys$i" "${ports[i]}" "$work/$n-$sys$i.log"
  done
  eps[$sys]=$list
}

wait_healthy() { # name port log
  for _ in $(seq 150); do
    if curl -fs --max-time 1 "http://127.0.0.1:$2/health" >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  echo "bench.sh: $1 did not become healthy; log:" >&2
  cat "$3" >&2
  exit 1
}

stop_cluster() { # SYSTEM: SIGTERM its members and wait for them
  local p
  for p in ${running[$1]:-}; do kill "$p" 2>/dev/null || true; done
  for p in ${running[$1]:-}; do wait "$p" 2>/dev/null || true; done
  running[$1]=""
}

# scenarios N prints "name|kvbench arguments" lines for an N-member cluster.
# --conns 100 gives every member a share of the connections.
scenarios() {
  local n=$1 put="put --key-size 8 --val-size 256 --key-space-size 100000"
  if [ "$n" = 1 ]; then
    echo "put-1client|--conns 1 --clients 1 $put --total $((TOTAL / 10))"
  fi
  echo "put-100clients|--conns 100 --clients 100 $put --total $TOTAL"
  echo "range-lin-100clients|--conns 100 --clients 100 range foo --consistency l --total $TOTAL"
  echo "range-ser-100clients|--conns 100 --clients 100 range foo --consistency s --total $TOTAL"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

row() { printf '%-7s %-22s %-5s %12s %10s %10s\n' "$@"; }

# run_scenario N NAME ARGS runs ROUNDS rounds against each system's running
# cluster and prints their medians and the kvd/etcd ratios.
run_scenario() {
  local n=$1 name=$2 args=$3 sys out failed
  local -A rps p50 p99
  for sys in "${SYSTEMS[@]}"; do : >"$work/$n-$name.$sys"; done
  for _ in $(seq "$ROUNDS"); do
    for sys in "${SYSTEMS[@]}"; do
      # shellcheck disable=SC2086 # args is a list of words
      $BENCH --endpoints "${eps[$sys]}" $args </dev/null | grep '^RESULT' >>"$work/$n-$name.$sys"
    done
  done
  for sys in "${SYSTEMS[@]}"; do
    out=$work/$n-$name.$sys
    rps[$sys]=$(field rps <"$out" | median)
    p50[$sys]=$(field p50_ms <"$out" | median)
    p99[$sys]=$(field p99_ms <"$out" | median)
    row "$n" "$name" "$sys" "${rps[$sys]}" "${p50[$sys]}" "${p99[$sys]}"
    failed=$(field failed <"$out" | awk '{s+=$1} END {print s+0}')
    if [ "$failed" != 0 ]; then echo "        warning: $sys had $failed failed requests in $name" >&2; fi
  done
  awk -v r1="${rps[kvd]}" -v r2="${rps[etcd]}" -v a1="${p50[kvd]}" -v a2="${p50[etcd]}" \
    -v b1="${p99[kvd]}" -v b2="${p99[etcd]}" -v n="$n" -v s="$name" '
    function ratio(x, y) { return y > 0 ? sprintf("%.2f", x / y) : "-" }
    BEGIN { printf "%-7s %-22s kvd/etcd %9s %10s %10s\n", n, s, ratio(r1, r2), ratio(a1, a2), ratio(b1, b2) }'
}

row members scenario server req/s p50_ms p99_ms
for n in $MEMBERS; do
  start_cluster kvd "$KVD" "$n"
  start_cluster etcd "$ETCD" "$n"
  while IFS='|' read -r name args; do
    run_scenario "$n" "$name" "$args"
  done < <(scenarios "$n")
  stop_cluster kvd
  stop_cluster etcd
done
