#!/usr/bin/env bash
# Benchmarks kvd against etcd v3.7.3 on this machine in the same run, as a
# single member and as a 3-member cluster, and prints for each scenario the
# median req/s, p50 and p99 of ROUNDS rounds with the kvd/etcd ratios. The
# put and range rows (plain, tls, auth and metrics) also give the servers'
# own CPU time per request (utime+stime from /proc, summed over the
# members) and their peak resident memory during the run (each member's
# VmHWM, reset at the run's start, summed over the members), medians of the
# rounds as well; on a machine whose cores the load generator shares, CPU
# per request is the figure that carries to bigger machines.
#
# For each cluster size in MEMBERS, a kvd cluster and an etcd cluster of that
# size start side by side on free 127.0.0.1 ports with fresh data dirs; the
# load (bin/kvbench, spread over all members' endpoints) goes to one system
# at a time, alternating round by round so machine noise hits both alike.
# Both clusters stop before the next size starts, and everything this script
# started is stopped when it exits.
#
# SCENARIOS picks the kinds of scenario to run, any of "put range watch
# lease auth snapshot"; snapshot is opt-in (not in the default) and is
# described in scripts/bench_snapshot.sh.
# The watch scenarios (single member only) open WATCH_WATCHERS watchers on one
# gRPC stream over 10 keys and put WATCH_PUTS times at WATCH_RATE puts/s;
# their req/s column is events delivered per second and their p50/p99 are
# the times from a put's send to each watcher receiving its event. A server
# answering the Watch RPC with Unimplemented is reported as not supporting
# watch, and the run goes on.
#
# The watchrange scenarios (opt-in: SCENARIOS="... watchrange"; single
# member) are the watch scenario with 10 watchers on the 10 keys written,
# plus WATCH_RANGE_WATCHERS watchers on prefix ranges no put writes (row
# watchrange-Nidle): what many range watchers cost each write shows in the
# latencies and in the server CPU per put.
#
# The lease scenarios come from two kvbench commands (their doc comments in
# cmd/kvbench/lease.go and lease_expiry.go say more), and a put row,
# lease-put-100clients, the put-100clients load with every key attached to
# one lease: its CPU per request beside put-100clients' is what leases cost
# a write:
#  - lease-keepalive grants LEASE_KEEPALIVE_LEASES leases from 100 clients
#    (row lease-grant-N), renews them LEASE_KEEPALIVES times over ONE
#    keep-alive stream with at most 100 unanswered (row lease-keepalive-N:
#    answers per second, send-to-answer p50/p99), then revokes them all
#    (row lease-revoke-N). The stream goes to the member LEASE_TARGET names:
#    the leader (default), which answers renewals itself, or a follower,
#    which forwards each renewal to the leader over the peer URLs.
#  - lease-expiry grants LEASE_EXPIRY_LEASES leases of LEASE_TTL seconds,
#    each with one key, and watches the keys go (row lease-expiry-NxTs).
#    There p50/p99 are lateness, the arrival of a key's DELETE event minus
#    (its grant's answer + TTL): lower is better, as for latencies, and
#    under a second is the goal. req/s is leases expired per second over
#    the window from the first lease falling due to the last deletion, so
#    higher is better as elsewhere; etcd revokes at most 1,000 expired
#    leases a second, kvd 2,000.
#
# The auth scenarios run last on each cluster, after `kvbench auth-setup`
# enabled auth there with a user (AUTH_USER) who may read and write every
# key: put and linearizable range as that user (compare with the rows
# without auth for what auth costs), and, single-member, AUTH_CLI_CALLS
# sequential `kvctl --user` calls, each a process that logs in anew (row
# auth-cli-N: calls per second and per-call times), which is what a shell
# script of them costs.
#
# The defrag scenario is opt-in (SCENARIOS="... defrag"; not in the default
# list: it writes gigabytes). For kvd, then etcd, on a fresh single member
# each, `kvbench defrag` fills the database to DEFRAG_FILL bytes, deletes every
# fourth key and compacts, then puts DEFRAG_RATE times a second while it
# defragments the member, and prints the defrag's total time, the longest gap
# between acknowledged puts during it and the longest put latency (p100,
# counted from when the steady schedule meant to send the put) in a table of
# its own.
#
# The metrics scenarios (opt-in: not in the default SCENARIOS) measure what
# metrics cost a server: the same puts with no scraper (row
# metrics-put-noscrape) and with every member's /metrics fetched every
# second during the run (row metrics-put-scrape1s), each followed by the
# servers' own CPU time per request (utime+stime from /proc). METRICS sets
# both systems' --metrics level (basic or extensive).
#
# The restart scenarios (opt-in: SCENARIOS="... restart") time a restart
# of a cluster holding RESTART_KEYS keys of 1 KiB to its first linearizable
# read, whole and one member at a time; scripts/bench_restart.sh says how.
#
# The memory scenarios (opt-in: SCENARIOS="... memory"; single member) give
# a member's anonymous RSS after loading MEMORY_KEYS keys of 1 KiB, and its
# peak RSS while MEMORY_CLIENTS clients each read the whole key space at
# once (MEMORY_MODES: one Range without limit, RangeStream, pages of 1,000);
# scripts/bench_memory.sh says how.
#
# The TLS scenarios (opt-in: SCENARIOS="... tls") run puts and ranges as the
# put and range rows do, on clusters of their own whose client and peer URLs
# are https, with client certificates required both ways (--client-cert-auth,
# --peer-client-cert-auth), from a CA and certificates made with openssl for
# the run; kvbench connects with --cacert --cert --key.
#
#   ROUNDS=3 TOTAL=20000 MEMBERS="1 3" SCENARIOS="put range watch lease auth" scripts/bench.sh
#   MEMBERS=1 SCENARIOS=tls scripts/bench.sh
#   SCENARIOS=defrag DEFRAG_FILL=$((1100 << 20)) scripts/bench.sh
#   MEMBERS=1 SCENARIOS=metrics METRICS=extensive scripts/bench.sh
#   ROUNDS=5 SCENARIOS=restart scripts/bench.sh
#   ROUNDS=3 SCENARIOS=memory scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
TOTAL=${TOTAL:-20000}
CONNS=${CONNS:-100}
MEMBERS=${MEMBERS:-1 3}
SCENARIOS=${SCENARIOS:-put range watch lease auth}
WATCH_WATCHERS=${WATCH_WATCHERS:-1000 10000}
WATCH_PUTS=${WATCH_PUTS:-300}
WATCH_RATE=${WATCH_RATE:-100}
WATCH_RANGE_WATCHERS=${WATCH_RANGE_WATCHERS:-0 10000}
LEASE_KEEPALIVE_LEASES=${LEASE_KEEPALIVE_LEASES:-10000}
LEASE_KEEPALIVES=${LEASE_KEEPALIVES:-100000}
LEASE_EXPIRY_LEASES=${LEASE_EXPIRY_LEASES:-1000}
LEASE_TTL=${LEASE_TTL:-3}
LEASE_TARGET=${LEASE_TARGET:-leader}
AUTH_USER=${AUTH_USER:-bench:benchpw}
AUTH_CLI_CALLS=${AUTH_CLI_CALLS:-100}
DEFRAG_FILL=${DEFRAG_FILL:-$((1100 << 20))}
DEFRAG_RATE=${DEFRAG_RATE:-200}
METRICS=${METRICS:-basic}
for kind in $SCENARIOS; do
  case $kind in put | range | watch | watchrange | lease | auth | defrag | metrics | snapshot | tls | restart | memory) ;; *) echo "bench.sh: unknown scenario kind $kind in SCENARIOS (want put, range, watch, watchrange, lease, auth, defrag, metrics, snapshot, tls, restart or memory)" >&2; exit 1 ;; esac
done
# The Makefile exports KVD_ETCD_BIN; without it, look where `make tools` builds.
ETCD=${KVD_ETCD_BIN:-$HOME/.cache/kvd-tools/$(sha256sum tools/etcdref/go.sum | cut -c1-12)/etcd}
[ -x "$ETCD" ] || { echo "bench.sh: no etcd binary at $ETCD (run make tools, or set KVD_ETCD_BIN)" >&2; exit 1; }
KVD=bin/kvd
BENCH=bin/kvbench
SYSTEMS=(kvd etcd)
go build -o bin/ ./cmd/kvd ./cmd/kvbench ./cmd/kvctl

work=$(mktemp -d)
declare -A eps     # system -> comma-separated client endpoints of its running cluster
declare -A running # system -> pids of its running cluster's members
declare -A cmdline logs pid # member name -> its command line, log file, pid
# With TLS on (the tls scenarios), clusters start with https URLs and these
# flags, and health checks and kvbench present the client certificate.
SCHEME=http
TLS_FLAGS=()
CURL_TLS=()
BENCH_TLS=""

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
    cluster+="${cluster:+,}$sys$i=$SCHEME://127.0.0.1:${ports[n + i]}"
  done
  running[$sys]=""
  for i in $(seq 0 $((n - 1))); do
    name=$sys$i c="$SCHEME://127.0.0.1:${ports[i]}" p="$SCHEME://127.0.0.1:${ports[n + i]}"
    # Kept, so that restart_member can start the member again as it was.
    printf -v 'cmdline[$name]' '%q ' "$bin" --name "$name" --data-dir "$work/$n/$name" \
      --listen-client-urls "$c" --advertise-client-urls "$c" \
      --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token "bench-$sys-$n" --log-level error --metrics "$METRICS" "${TLS_FLAGS[@]}"
    logs[$name]=$work/$n-$name.log
    : >"${logs[$name]}"
    restart_member "$sys" "$name"
    list+="${list:+,}127.0.0.1:${ports[i]}"
  done
  for i in $(seq 0 $((n - 1))); do
    wait_healthy "$sys$i" "${ports[i]}" "$work/$n-$sys$i.log"
  done
  eps[$sys]=$list
}

# restart_member SYSTEM NAME starts member NAME of SYSTEM's cluster (again)
# with the command line start_cluster gave it, and records its pid in
# running[SYSTEM] and pid[NAME].
restart_member() {
  eval "${cmdline[$2]}" '>>"${logs[$2]}" 2>&1 &'
  pid[$2]=$!
  running[$1]+=" $!"
}

wait_healthy() { # name port log
  for _ in $(seq 150); do
    if curl -fs --max-time 1 "${CURL_TLS[@]}" "$SCHEME://127.0.0.1:$2/health" >/dev/null 2>&1; then return; fi
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

# all_scenarios N prints "name|kvbench arguments" lines for an N-member
# cluster; a name's first word (before the first -) is its kind. A name with
# %s is a kvbench run that prints several RESULT lines, tagged part=PART,
# each a row whose name has PART for %s. --conns 100 gives every member a
# share of the connections; CONNS changes that for the plain put and range
# rows (CONNS=10: ten calls in flight on each connection).
all_scenarios() {
  local n=$1 put="put --key-size 8 --val-size 256 --key-space-size 100000" w
  # @PIDS@ becomes the measured system's member pids (see run_scenario).
  local srv="--server-pids @PIDS@"
  if [ "$n" = 1 ]; then
    echo "put-1client|--conns 1 --clients 1 $srv $put --total $((TOTAL / 10))"
  fi
  echo "put-100clients|--conns $CONNS --clients 100 $srv $put --total $TOTAL"
  echo "range-lin-100clients|--conns $CONNS --clients 100 $srv range foo --consistency l --total $TOTAL"
  echo "range-ser-100clients|--conns $CONNS --clients 100 $srv range foo --consistency s --total $TOTAL"
  # Run on clusters of their own, with TLS on (see run_tls).
  echo "tls-put-100clients|--conns 100 --clients 100 $srv $put --total $TOTAL"
  echo "tls-range-lin-100clients|--conns 100 --clients 100 $srv range foo --consistency l --total $TOTAL"
  echo "tls-range-ser-100clients|--conns 100 --clients 100 $srv range foo --consistency s --total $TOTAL"
  echo "metrics-put-noscrape|--conns 100 --clients 100 $srv $put --total $TOTAL"
  echo "metrics-put-scrape1s|--conns 100 --clients 100 $srv --scrape-interval 1s $put --total $TOTAL"
  if [ "$n" = 1 ]; then
    for w in $WATCH_WATCHERS; do
      echo "watch-${w}w-1stream|--conns 1 watch --watchers $w --streams 1 --keys 10 --put-rate $WATCH_RATE --total $WATCH_PUTS"
    done
    for w in $WATCH_RANGE_WATCHERS; do
      echo "watchrange-${w}idle|--conns 1 $srv watch --watchers 10 --streams 1 --keys 10 --idle-range-watchers $w --put-rate $WATCH_RATE --total $WATCH_PUTS"
    done
  fi
  echo "lease-%s-$LEASE_KEEPALIVE_LEASES|--conns 100 --clients 100 lease-keepalive --leases $LEASE_KEEPALIVE_LEASES --total $LEASE_KEEPALIVES --window 100 --target $LEASE_TARGET"
  # What attaching keys to a lease costs a put: compare with put-100clients.
  echo "lease-put-100clients|--conns 100 --clients 100 $srv $put --lease-ttl 3600 --total $TOTAL"
  echo "lease-expiry-${LEASE_EXPIRY_LEASES}x${LEASE_TTL}s|--conns 10 --clients 10 lease-expiry --leases $LEASE_EXPIRY_LEASES --ttl $LEASE_TTL"
  # Last: they enable auth on the cluster (see enable_auth).
  echo "auth-put-100clients|--user $AUTH_USER --conns 100 --clients 100 $srv $put --total $TOTAL"
  echo "auth-range-lin-100clients|--user $AUTH_USER --conns 100 --clients 100 $srv range foo --consistency l --total $TOTAL"
  if [ "$n" = 1 ]; then
    echo "auth-cli-${AUTH_CLI_CALLS}calls|--user $AUTH_USER --total $AUTH_CLI_CALLS cli bin/kvctl get foo"
  fi
}

# scenarios N prints the lines of all_scenarios whose kind is in SCENARIOS.
scenarios() {
  local line
  while IFS= read -r line; do
    case " $SCENARIOS " in *" ${line%%-*} "*) echo "$line" ;; esac
  done < <(all_scenarios "$1")
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.* $1=\(-\{0,1\}[0-9.]*\).*/\1/p"; } # lease lateness may be < 0

row() { printf '%-7s %-24s %-5s %12s %10s %10s %12s %12s\n' "$@"; }

# run_scenario N NAME ARGS runs ROUNDS rounds against each system's running
# cluster and prints their medians and the kvd/etcd ratios, a row for each
# part when the runs print several RESULT lines. A system whose kvbench
# exits with status 3 (the server answered Unimplemented) is skipped for the
# rest of the scenario and reported as not supporting it.
run_scenario() {
  local n=$1 name=$2 args=$3 sys rc res part pids
  local -a parts
  local -A unsupported
  for sys in "${SYSTEMS[@]}"; do : >"$work/$n-$name.$sys"; done
  for _ in $(seq "$ROUNDS"); do
    for sys in "${SYSTEMS[@]}"; do
      [ -z "${unsupported[$sys]:-}" ] || continue
      rc=0
      pids=$(echo ${running[$sys]} | tr ' ' ',')
      # shellcheck disable=SC2086 # args is a list of words
      res=$($BENCH --endpoints "${eps[$sys]}" $BENCH_TLS ${args//@PIDS@/$pids} </dev/null 2>"$work/$n-$name.$sys.err") || rc=$?
      case $rc in
        0)
          grep '^RESULT' <<<"$res" >>"$work/$n-$name.$sys"
          cat "$work/$n-$name.$sys.err" >&2
          ;;
        3) unsupported[$sys]=1 ;;
        *)
          echo "bench.sh: kvbench against $sys failed (status $rc) in $name:" >&2
          cat "$work/$n-$name.$sys.err" >&2
          exit 1
          ;;
      esac
    done
  done
  # The parts in the order the runs printed them; one untagged part if none.
  mapfile -t parts < <(for sys in "${SYSTEMS[@]}"; do
    sed -n 's/^RESULT part=\([^ ]*\).*/\1/p' "$work/$n-$name.$sys"
  done | awk '!seen[$0]++')
  [ "${#parts[@]}" -gt 0 ] || parts=("")
  for part in "${parts[@]}"; do
    report_part "$n" "$name" "$part"
  done
}

# report_part N NAME PART prints, for the RESULT lines of run_scenario's
# runs tagged part=PART (untagged for PART ""), each system's medians and
# the kvd/etcd ratios. It reads run_scenario's unsupported.
report_part() {
  local n=$1 row=${2/\%s/$3} part=$3 sys out failed
  [ -n "$part" ] || row=${2/-\%s/} # a %s name with no parts: no system supported it
  local -A rps p50 p99 cpu rss
  for sys in "${SYSTEMS[@]}"; do
    if [ -n "${unsupported[$sys]:-}" ]; then
      printf '%-7s %-24s %-5s %s\n' "$n" "$row" "$sys" "${row%%-*} not supported (the server answered Unimplemented)"
      continue
    fi
    out=$work/$n-$row.$sys.part
    if [ -n "$part" ]; then
      grep "^RESULT part=$part " "$work/$n-$2.$sys" >"$out" || true
    else
      grep -v '^RESULT part=' "$work/$n-$2.$sys" >"$out" || true
    fi
    rps[$sys]=$(field rps <"$out" | median)
    p50[$sys]=$(field p50_ms <"$out" | median)
    p99[$sys]=$(field p99_ms <"$out" | median)
    # Only runs given --server-pids report these; "-" elsewhere.
    cpu[$sys]=$(field cpu_us_per_req <"$out" | median)
    rss[$sys]=$(field peak_rss_mib <"$out" | median)
    row "$n" "$row" "$sys" "${rps[$sys]}" "${p50[$sys]}" "${p99[$sys]}" "${cpu[$sys]:--}" "${rss[$sys]:--}"
    failed=$(field failed <"$out" | awk '{s+=$1} END {print s+0}')
    if [ "$failed" != 0 ]; then echo "        warning: $sys had $failed failed requests in $row" >&2; fi
  done
  if [ -n "${unsupported[*]}" ]; then return; fi
  awk -v r1="${rps[kvd]}" -v r2="${rps[etcd]}" -v a1="${p50[kvd]}" -v a2="${p50[etcd]}" \
    -v b1="${p99[kvd]}" -v b2="${p99[etcd]}" -v c1="${cpu[kvd]}" -v c2="${cpu[etcd]}" \
    -v m1="${rss[kvd]}" -v m2="${rss[etcd]}" -v n="$n" -v s="$row" '
    function ratio(x, y) { return x != "" && y > 0 ? sprintf("%.2f", x / y) : "-" }
    BEGIN { printf "%-7s %-24s kvd/etcd %9s %10s %10s %12s %12s\n", n, s, ratio(r1, r2), ratio(a1, a2), ratio(b1, b2), ratio(c1, c2), ratio(m1, m2) }'
}

# enable_auth turns auth on in both running clusters, with AUTH_USER.
enable_auth() {
  local sys
  for sys in "${SYSTEMS[@]}"; do
    $BENCH --endpoints "${eps[$sys]}" auth-setup "$AUTH_USER" || { echo "bench.sh: enabling auth on $sys failed" >&2; exit 1; }
  done
}

# run_defrag runs the defrag scenario on a fresh single member of each
# system in turn (one at a time: each holds a gigabyte database) and prints
# one row per system.
run_defrag() {
  local sys bin res firsterr
  printf '\n%-7s %-8s %10s %12s %11s %10s %14s %14s\n' scenario server defrag_s max_gap_ms p100_ms p99_ms size_before size_after
  for sys in "${SYSTEMS[@]}"; do
    bin=$KVD
    [ "$sys" = kvd ] || bin=$ETCD
    rm -rf "$work/1"
    start_cluster "$sys" "$bin" 1
    res=$($BENCH --endpoints "${eps[$sys]}" --clients 16 defrag --fill-bytes "$DEFRAG_FILL" --rate "$DEFRAG_RATE" </dev/null 2>"$work/defrag.$sys.err") || {
      echo "bench.sh: kvbench defrag against $sys failed:" >&2
      cat "$work/defrag.$sys.err" >&2
      exit 1
    }
    stop_cluster "$sys"
    rm -rf "$work/1"
    firsterr=$(grep '^First error' <<<"$res" || true)
    res=$(grep '^RESULT' <<<"$res")
    printf '%-7s %-8s %10s %12s %11s %10s %14s %14s\n' defrag "$sys" "$(field defrag_s <<<"$res")" \
      "$(field max_gap_ms <<<"$res")" "$(field p100_ms <<<"$res")" "$(field p99_ms <<<"$res")" \
      "$(field size_before <<<"$res")" "$(field size_after <<<"$res")"
    if [ "$(field failed <<<"$res")" != 0 ]; then echo "        warning: $sys had $(field failed <<<"$res") failed puts during the defrag scenario ($firsterr)" >&2; fi
  done
}

# make_certs writes a CA, and a certificate for 127.0.0.1 good for serving
# and for client authentication, signed by it, into $work/certs.
make_certs() {
  local d=$work/certs
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=bench CA" -keyout "$d/ca-key.pem" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench" \
    -keyout "$d/key.pem" -out "$d/cert.csr" 2>/dev/null
  openssl x509 -req -days 1 -in "$d/cert.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -CAcreateserial -out "$d/cert.pem" \
    -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n') 2>/dev/null
}

# run_tls runs the tls scenarios on clusters of each size with TLS on.
run_tls() {
  local d=$work/certs n list name args
  make_certs
  SCHEME=https
  TLS_FLAGS=(--cert-file "$d/cert.pem" --key-file "$d/key.pem" --trusted-ca-file "$d/ca.pem" --client-cert-auth
    --peer-cert-file "$d/cert.pem" --peer-key-file "$d/key.pem" --peer-trusted-ca-file "$d/ca.pem" --peer-client-cert-auth)
  CURL_TLS=(--cacert "$d/ca.pem" --cert "$d/cert.pem" --key "$d/key.pem")
  BENCH_TLS="--cacert $d/ca.pem --cert $d/cert.pem --key $d/key.pem"
  for n in $MEMBERS; do
    list=$(scenarios "$n" | grep '^tls-' || true)
    [ -n "$list" ] || continue
    rm -rf "${work:?}/$n"
    start_cluster kvd "$KVD" "$n"
    start_cluster etcd "$ETCD" "$n"
    while IFS='|' read -r name args; do
      run_scenario "$n" "$name" "$args"
    done <<<"$list"
    stop_cluster kvd
    stop_cluster etcd
  done
  # The opt-in kinds that run after this one (restart, memory, ...) start
  # plain clusters and connect without certificates.
  SCHEME=http
  TLS_FLAGS=()
  CURL_TLS=()
  BENCH_TLS=""
}

row members scenario server req/s p50_ms p99_ms cpu_us/req peak_rss_MiB
for n in $MEMBERS; do
  list=$(scenarios "$n" | grep -v '^tls-' || true)
  [ -n "$list" ] || continue
  start_cluster kvd "$KVD" "$n"
  start_cluster etcd "$ETCD" "$n"
  authed=""
  while IFS='|' read -r name args; do
    if [ "${name%%-*}" = auth ] && [ -z "$authed" ]; then
      enable_auth
      authed=1
    fi
    run_scenario "$n" "$name" "$args"
  done <<<"$list"
  stop_cluster kvd
  stop_cluster etcd
done
case " $SCENARIOS " in *" tls "*) run_tls ;; esac
case " $SCENARIOS " in *" defrag "*) run_defrag ;; esac

case " $SCENARIOS " in
*" snapshot "*)
  # shellcheck source=scripts/bench_snapshot.sh
  . scripts/bench_snapshot.sh
  snapshot_bench
  ;;
esac

case " $SCENARIOS " in
*" restart "*)
  # shellcheck source=scripts/bench_restart.sh
  . scripts/bench_restart.sh
  restart_bench
  ;;
esac

case " $SCENARIOS " in
*" memory "*)
  # shellcheck source=scripts/bench_memory.sh
  . scripts/bench_memory.sh
  memory_bench
  ;;
esac
