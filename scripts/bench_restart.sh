# shellcheck shell=bash
# The restart scenario of scripts/bench.sh, sourced by it (it uses its
# start_cluster, restart_member, stop_cluster, wait_healthy, median, cmdline,
# pid and work). Opt in with SCENARIOS=restart; it is not in the default
# list, as filling the databases takes a while.
#
# For each cluster size in MEMBERS, a kvd cluster and an etcd cluster are
# each filled with RESTART_KEYS keys of 1 KiB values, then, ROUNDS times,
# alternating between the systems:
#  - restart-whole-N: every member is stopped (SIGTERM) and all are started
#    again at once; the time is from just before the first process starts
#    to the first linearizable read any member serves (`kvbench first-read`,
#    polling every member every few milliseconds);
#  - restart-one-of-N (N > 1): with the cluster healthy, one member is
#    stopped and started again, and timed to the first linearizable read it
#    serves itself, the leader having stayed up elsewhere (most of the time:
#    the member restarted is the first, whichever was leader).
# The table gives the median, fastest and slowest of the rounds in ms and
# the kvd/etcd ratio of the medians (below 1 is better).

RESTART_KEYS=${RESTART_KEYS:-100000}

# stop_member SYSTEM NAME stops one member of SYSTEM's running cluster.
stop_member() {
  local p=${pid[$2]}
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  running[$1]=$(sed "s/ $p\$//; s/ $p / /" <<<" ${running[$1]}")
}

# restart_time SYSTEM ENDPOINTS NAME... stops members NAME..., starts them
# again and prints the ms to the first linearizable read ENDPOINTS serve.
restart_time() {
  local sys=$1 eps=$2 name t0 res
  shift 2
  for name in "$@"; do stop_member "$sys" "$name"; done
  t0=$(date +%s%N)
  for name in "$@"; do restart_member "$sys" "$name"; done
  res=$($BENCH --endpoints "$eps" first-read --since "$t0" 2>"$work/restart.err") || {
    echo "bench.sh: kvbench first-read against $sys failed:" >&2
    cat "$work/restart.err" >&2
    exit 1
  }
  sed -n 's/^RESULT ms=\([0-9.]*\).*/\1/p' <<<"$res"
}

# wait_cluster_healthy SYSTEM waits until every member of SYSTEM's cluster
# reports healthy.
wait_cluster_healthy() {
  local ep
  for ep in ${eps[$1]//,/ }; do wait_healthy "$1" "${ep##*:}" /dev/null; done
}

restart_report() { # N ROW: prints the rows of both systems and the ratio
  local n=$1 row=$2 sys f
  local -A med
  for sys in "${SYSTEMS[@]}"; do
    f=$work/restart-$row.$sys
    med[$sys]=$(median <"$f")
    printf '%-7s %-20s %-5s %10s %10s %10s\n' "$n" "$row" "$sys" "${med[$sys]}" "$(sort -g "$f" | head -1)" "$(sort -g "$f" | tail -1)"
  done
  awk -v a="${med[kvd]}" -v b="${med[etcd]}" -v n="$n" -v s="$row" \
    'BEGIN { printf "%-7s %-20s kvd/etcd %7s\n", n, s, (b > 0 ? sprintf("%.2f", a / b) : "-") }'
}

restart_bench() {
  local n sys names i first
  printf '\n%-7s %-20s %-5s %10s %10s %10s\n' members restart server median_ms min_ms max_ms
  for n in $MEMBERS; do
    rm -rf "${work:?}/$n"
    for sys in "${SYSTEMS[@]}"; do
      start_cluster "$sys" "$([ "$sys" = kvd ] && echo "$KVD" || echo "$ETCD")" "$n"
      $BENCH --endpoints "${eps[$sys]}" --conns 10 --clients 50 put --sequential-keys --key-space-size "$RESTART_KEYS" \
        --total "$RESTART_KEYS" --key-size 16 --val-size 1024 >/dev/null </dev/null || {
        echo "bench.sh: filling $sys failed" >&2
        exit 1
      }
      : >"$work/restart-restart-whole-$n.$sys"
      : >"$work/restart-restart-one-of-$n.$sys"
    done
    for _ in $(seq "$ROUNDS"); do
      for sys in "${SYSTEMS[@]}"; do
        names=()
        for i in $(seq 0 $((n - 1))); do names+=("$sys$i"); done
        restart_time "$sys" "${eps[$sys]}" "${names[@]}" >>"$work/restart-restart-whole-$n.$sys"
        [ "$n" -gt 1 ] || continue
        wait_cluster_healthy "$sys"
        first=${eps[$sys]%%,*}
        restart_time "$sys" "$first" "${sys}0" >>"$work/restart-restart-one-of-$n.$sys"
        wait_cluster_healthy "$sys"
      done
    done
    restart_report "$n" "restart-whole-$n"
    [ "$n" = 1 ] || restart_report "$n" "restart-one-of-$n"
    for sys in "${SYSTEMS[@]}"; do stop_cluster "$sys"; done
  done
}
