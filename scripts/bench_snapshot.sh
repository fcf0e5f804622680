# shellcheck shell=bash
# The snapshot scenario of scripts/bench.sh, sourced by it (it uses its
# start_cluster, stop_cluster, row, median and work). Opt in with
# SCENARIOS=snapshot; it is not in the default list, as filling the
# databases takes a few minutes.
#
# A single kvd member and a single etcd member are each filled with about
# SNAPSHOT_MB megabytes of history (8 KiB values), then, SNAPSHOT_ROUNDS
# times each, alternating between the systems:
#  - snapshot-save: `kvctl snapshot save` from kvd and `etcdctl snapshot
#    save` from etcd, each client with its own server;
#  - snapshot-restore: `kvctl snapshot restore` of kvd's file and `etcdutl
#    snapshot restore` of etcd's, into a fresh data dir.
# The req/s column is MB/s (the file's size over the median wall time),
# p50_ms is the median time and p99_ms the slowest; the kvd/etcd row divides
# them as for the other scenarios (above 1 is better for MB/s, below 1 for
# the times).

SNAPSHOT_MB=${SNAPSHOT_MB:-300}
SNAPSHOT_ROUNDS=${SNAPSHOT_ROUNDS:-3}
TOOLS=$HOME/.cache/kvd-tools/$(sha256sum tools/etcdref/go.sum | cut -c1-12)
ETCDCTL=${KVD_ETCDCTL_BIN:-$TOOLS/etcdctl}
ETCDUTL=${KVD_ETCDUTL_BIN:-$TOOLS/etcdutl}

# snap_time CMD... runs CMD, quiet, and prints its wall time in ms.
snap_time() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null 2>"$work/snapshot-cmd.err" || { echo "bench.sh: $* failed:" >&2; cat "$work/snapshot-cmd.err" >&2; exit 1; }
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}

# snap_report NAME SYSTEM SIZE_BYTES TIMES_FILE prints a row; it sets
# snap_rate[SYSTEM], snap_p50[SYSTEM], snap_max[SYSTEM] for the ratio row.
declare -A snap_rate snap_p50 snap_max
snap_report() {
  local name=$1 sys=$2 size=$3 times=$4
  snap_p50[$sys]=$(median <"$times")
  snap_max[$sys]=$(sort -g "$times" | tail -1)
  snap_rate[$sys]=$(awk -v b="$size" -v ms="${snap_p50[$sys]}" 'BEGIN { printf "%.1f", b / 1e6 / (ms / 1000) }')
  row 1 "$name" "$sys" "${snap_rate[$sys]}" "${snap_p50[$sys]}" "${snap_max[$sys]}"
}

snap_ratio() {
  awk -v r1="${snap_rate[kvd]}" -v r2="${snap_rate[etcd]}" -v a1="${snap_p50[kvd]}" -v a2="${snap_p50[etcd]}" \
    -v b1="${snap_max[kvd]}" -v b2="${snap_max[etcd]}" -v s="$1" '
    function ratio(x, y) { return y > 0 ? sprintf("%.2f", x / y) : "-" }
    BEGIN { printf "%-7s %-22s kvd/etcd %9s %10s %10s\n", 1, s, ratio(r1, r2), ratio(a1, a2), ratio(b1, b2) }'
}

snapshot_bench() {
  local sys cli restorer puts i size name file
  local -A files
  [ -x "$ETCDCTL" ] && [ -x "$ETCDUTL" ] || { echo "bench.sh: snapshot needs etcdctl and etcdutl (run make tools)" >&2; exit 1; }
  puts=$((SNAPSHOT_MB * 1024 / 8))
  for sys in "${SYSTEMS[@]}"; do
    start_cluster "$sys" "$([ "$sys" = kvd ] && echo "$KVD" || echo "$ETCD")" 1
    # Distinct keys, so the data is live keys rather than history.
    $BENCH --endpoints "${eps[$sys]}" --conns 8 --clients 8 put --key-size 16 --val-size 8192 \
      --key-space-size "$puts" --sequential-keys --total "$puts" >/dev/null 2>"$work/snapshot-fill.err" ||
      { echo "bench.sh: filling $sys failed:" >&2; cat "$work/snapshot-fill.err" >&2; exit 1; }
  done
  name="snapshot-save-${SNAPSHOT_MB}MB"
  for sys in "${SYSTEMS[@]}"; do : >"$work/$name.$sys"; done
  for i in $(seq "$SNAPSHOT_ROUNDS"); do
    for sys in "${SYSTEMS[@]}"; do
      cli=$([ "$sys" = kvd ] && echo bin/kvctl || echo "$ETCDCTL")
      file=$work/snapshot-$sys-$i.db
      snap_time "$cli" --endpoints "${eps[$sys]}" snapshot save "$file" >>"$work/$name.$sys"
      files[$sys]=$file
      [ "$i" = 1 ] || rm -f "$work/snapshot-$sys-$((i - 1)).db"
    done
  done
  for sys in "${SYSTEMS[@]}"; do
    stop_cluster "$sys"
    size=$(stat -c %s "${files[$sys]}")
    snap_report "$name" "$sys" "$size" "$work/$name.$sys"
  done
  snap_ratio "$name"

  name="snapshot-restore-${SNAPSHOT_MB}MB"
  for sys in "${SYSTEMS[@]}"; do : >"$work/$name.$sys"; done
  for i in $(seq "$SNAPSHOT_ROUNDS"); do
    for sys in "${SYSTEMS[@]}"; do
      restorer=$([ "$sys" = kvd ] && echo bin/kvctl || echo "$ETCDUTL")
      snap_time "$restorer" snapshot restore "${files[$sys]}" --name r1 --data-dir "$work/restored-$sys-$i" \
        --initial-cluster r1=http://127.0.0.1:1 --initial-advertise-peer-urls http://127.0.0.1:1 >>"$work/$name.$sys"
      rm -rf "$work/restored-$sys-$i"
    done
  done
  for sys in "${SYSTEMS[@]}"; do
    snap_report "$name" "$sys" "$(stat -c %s "${files[$sys]}")" "$work/$name.$sys"
  done
  snap_ratio "$name"
}
