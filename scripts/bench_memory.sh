# shellcheck shell=bash
# The memory scenario of scripts/bench.sh, sourced by it (it uses its
# start_cluster, restart_member, wait_healthy, stop_cluster, median, pid,
# eps and work, and stop_member from scripts/bench_restart.sh). Opt in with
# SCENARIOS=memory; it is not in the default list, as filling the databases
# takes a while. Single member only, whatever MEMBERS says.
#
# ROUNDS times, kvd then etcd, each on a fresh member of its own (one
# system at a time, so neither's memory presses on the other's):
#  - memory-anon-after-load: MEMORY_KEYS keys of 1 KiB are put (50 clients,
#    16-byte sequential keys), and after a few seconds' rest the member's
#    anonymous resident memory (RssAnon of /proc/<pid>/status: heap and
#    stacks, not the pages of the mmapped database) is read (`kvbench rss`);
#  - memory-anon-after-restart: the same figure a second after the member
#    restarted with that data, before the reads below (one sample for each
#    mode), the floor under their peaks;
#  - memory-peak-MODE-Nclients, for each MODE of MEMORY_MODES: the member is
#    restarted (so what an earlier read left on its heap does not count),
#    its peak RSS (VmHWM) reset, and MEMORY_CLIENTS clients, each on a
#    connection of its own, read the whole key space at the same moment
#    (`kvbench full-range`): range is one Range without limit each, stream
#    one RangeStream each (the etcd v3.7 RPC `etcdctl get` uses for large
#    ranges), page Ranges of 1,000 keys. The figure is the member's VmHWM
#    over the reads: what a host must have free for them.
# The table gives the median, smallest and largest of the rounds in MiB and
# the kvd/etcd ratio of the medians (below 1 is better).

MEMORY_KEYS=${MEMORY_KEYS:-100000}
MEMORY_CLIENTS=${MEMORY_CLIENTS:-10}
MEMORY_MODES=${MEMORY_MODES:-range stream}
# shellcheck source=scripts/bench_restart.sh
. scripts/bench_restart.sh

# memory_field SYSTEM "ROW=FIELD..." ARGS... runs kvbench ARGS against
# SYSTEM's member and appends, for each ROW=FIELD, the RESULT's FIELD to the
# ROW file of SYSTEM; a server answering Unimplemented leaves the files as
# they were.
memory_field() {
  local sys=$1 pairs=$2 res rc=0 pair
  shift 2
  res=$($BENCH --endpoints "${eps[$sys]}" --server-pids "${pid[${sys}0]}" "$@" </dev/null 2>"$work/memory.err") || rc=$?
  case $rc in
    0)
      for pair in $pairs; do
        grep '^RESULT' <<<"$res" | field "${pair#*=}" >>"$work/memory-${pair%%=*}.$sys"
      done
      ;;
    3) echo "        $sys does not support $* (the server answered Unimplemented)" >&2 ;;
    *)
      echo "bench.sh: kvbench $* against $sys failed (status $rc):" >&2
      cat "$work/memory.err" >&2
      exit 1
      ;;
  esac
}

memory_report() { # ROW: prints the rows of both systems and the ratio
  local row=$1 sys f
  local -A med
  for sys in "${SYSTEMS[@]}"; do
    f=$work/memory-$row.$sys
    if [ ! -s "$f" ]; then
      printf '%-7s %-28s %-5s %s\n' 1 "$row" "$sys" "not supported"
      continue
    fi
    med[$sys]=$(median <"$f")
    printf '%-7s %-28s %-5s %10s %10s %10s\n' 1 "$row" "$sys" "${med[$sys]}" "$(sort -g "$f" | head -1)" "$(sort -g "$f" | tail -1)"
  done
  awk -v a="${med[kvd]:-}" -v b="${med[etcd]:-}" -v s="$row" \
    'BEGIN { printf "%-7s %-28s kvd/etcd %7s\n", 1, s, (a != "" && b > 0 ? sprintf("%.2f", a / b) : "-") }'
}

memory_bench() {
  local sys mode rows=(memory-anon-after-load memory-anon-after-restart) row
  for mode in $MEMORY_MODES; do rows+=("memory-peak-$mode-${MEMORY_CLIENTS}clients"); done
  for sys in "${SYSTEMS[@]}"; do
    for row in "${rows[@]}"; do : >"$work/memory-$row.$sys"; done
  done
  for _ in $(seq "$ROUNDS"); do
    for sys in "${SYSTEMS[@]}"; do
      rm -rf "${work:?}/1"
      start_cluster "$sys" "$([ "$sys" = kvd ] && echo "$KVD" || echo "$ETCD")" 1
      $BENCH --endpoints "${eps[$sys]}" --conns 10 --clients 50 put --sequential-keys --key-space-size "$MEMORY_KEYS" \
        --total "$MEMORY_KEYS" --key-size 16 --val-size 1024 >/dev/null </dev/null || {
        echo "bench.sh: filling $sys failed" >&2
        exit 1
      }
      memory_field "$sys" memory-anon-after-load=anon_rss_mib rss --settle 3s
      for mode in $MEMORY_MODES; do
        stop_member "$sys" "${sys}0"
        restart_member "$sys" "${sys}0"
        wait_healthy "${sys}0" "${eps[$sys]##*:}" "${logs[${sys}0]}"
        memory_field "$sys" "memory-anon-after-restart=anon_rss_mib memory-peak-$mode-${MEMORY_CLIENTS}clients=peak_rss_mib" \
          --conns "$MEMORY_CLIENTS" --clients "$MEMORY_CLIENTS" full-range --mode "$mode" --settle 1s
      done
      stop_cluster "$sys"
    done
  done
  rm -rf "${work:?}/1"
  printf '\n%-7s %-28s %-5s %10s %10s %10s\n' members memory server median_MiB min_MiB max_MiB
  for row in "${rows[@]}"; do memory_report "$row"; done
}
