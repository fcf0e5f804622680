#!/usr/bin/env bash
# Benchmarks a single-member kvd against a single-member etcd v3.7.3 on this
# machine in the same run, and prints the median of ROUNDS rounds for each
# scenario with the kvd/etcd ratio. Both servers get fresh data dirs on
# 127.0.0.1 and are stopped at the end.
#
#   ROUNDS=3 TOTAL=20000 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
TOTAL=${TOTAL:-20000}
ETCD=${KVD_ETCD_BIN:?set KVD_ETCD_BIN (make bench does)}
KVD=bin/kvd
BENCH=bin/kvbench
go build -o bin/ ./cmd/kvbench

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # name binary -> prints client endpoint
  local name=$1 bin=$2 cport pport
  cport=$(free_port); pport=$(free_port)
  "$bin" --name "$name" --data-dir "$work/$name" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "$name=http://127.0.0.1:$pport" --log-level error >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    if curl -fs "http://127.0.0.1:$cport/health" >/dev/null 2>&1; then echo "127.0.0.1:$cport"; return; fi
    sleep 0.1
  done
  echo "$name did not become healthy; log:" >&2; cat "$work/$name.log" >&2; exit 1
}

kvd_ep=$(start kvd "$KVD")
etcd_ep=$(start etcd "$ETCD")

scenarios=(
  "put-1client|--conns 1 --clients 1 put --total $((TOTAL / 10)) --key-size 8 --val-size 256 --key-space-size 100000"
  "put-100clients|--conns 100 --clients 100 put --total $TOTAL --key-size 8 --val-size 256 --key-space-size 100000"
  "range-lin-100clients|--conns 100 --clients 100 range foo --consistency l --total $TOTAL"
  "range-ser-100clients|--conns 100 --clients 100 range foo --consistency s --total $TOTAL"
)

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

printf '%-22s %-5s %12s %10s %10s\n' scenario server req/s p50_ms p99_ms
for sc in "${scenarios[@]}"; do
  name=${sc%%|*}; args=${sc#*|}
  declare -A rps p50 p99
  : >"$work/$name.kvd"; : >"$work/$name.etcd"
  # Interleave the two servers' rounds so machine noise hits both alike.
  for _ in $(seq "$ROUNDS"); do
    for srv in kvd etcd; do
      ep=$kvd_ep; [ "$srv" = etcd ] && ep=$etcd_ep
      # shellcheck disable=SC2086
      $BENCH --endpoints "$ep" $args | grep '^RESULT' >>"$work/$name.$srv"
    done
  done
  for srv in kvd etcd; do
    rps[$srv]=$(field rps <"$work/$name.$srv" | median)
    p50[$srv]=$(field p50_ms <"$work/$name.$srv" | median)
    p99[$srv]=$(field p99_ms <"$work/$name.$srv" | median)
    printf '%-22s %-5s %12s %10s %10s\n' "$name" "$srv" "${rps[$srv]}" "${p50[$srv]}" "${p99[$srv]}"
  done
  awk -v a="${rps[kvd]}" -v b="${rps[etcd]}" -v n="$name" 'BEGIN { if (b > 0) printf "%-22s ratio kvd/etcd req/s: %.2f\n", n, a / b }'
done
