#!/usr/bin/env bash
# Runs a local kvd cluster of N members (default 3) on 127.0.0.1, laid out as
# etcd's Procfile does: member i is named infra<i>, serves clients on
# <i>2379 and peers on <i>2380 (12379/12380, 22379/22380, 32379/32380, ...).
# Data dirs, logs and pid files live under ${KVD_CLUSTER_DIR:-./.cluster}.
#
#   scripts/cluster.sh start [N]   build bin/kvd and bin/kvctl, start, wait for health
#   scripts/cluster.sh status      endpoint status of the running members
#   scripts/cluster.sh stop        SIGTERM each member and wait for it to exit
#   scripts/cluster.sh clean       stop, then remove the data dirs and logs
#
# The data dirs are kept across stop/start, so a restarted cluster keeps its
# keys; `clean` before starting with a different N.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${KVD_CLUSTER_DIR:-./.cluster}
TOKEN=kv-cluster-1
MAX_MEMBERS=6 # member 7 would need port 72379

client_port() { echo $(($1 * 10000 + 2379)); }
peer_port() { echo $(($1 * 10000 + 2380)); }

die() { echo "cluster.sh: $*" >&2; exit 1; }

# running_members prints the index of every member whose pid file names a
# live kvd process.
running_members() {
  local f i pid
  for f in "$DIR"/infra*.pid; do
    [ -e "$f" ] || continue
    i=${f##*/infra}; i=${i%.pid}
    pid=$(cat "$f")
    if is_kvd "$pid"; then echo "$i"; fi
  done
}

# is_kvd is true when pid is alive and runs bin/kvd, so a stale pid file whose
# number the system has since reused never gets a signal from us.
is_kvd() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'kvd --name infra'
}

endpoints_of() { # indexes... -> comma-separated client URLs
  local out="" i
  for i in "$@"; do out+="${out:+,}http://127.0.0.1:$(client_port "$i")"; done
  echo "$out"
}

healthy() { curl -fs --max-time 1 "http://127.0.0.1:$(client_port "$1")/health" >/dev/null 2>&1; }

cmd_start() {
  local n=${1:-3} i cluster="" eps c p
  if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt $MAX_MEMBERS ]; then
    die "N must be 1..$MAX_MEMBERS, not '$n'"
  fi
  if [ -n "$(running_members)" ]; then
    die "members already running under $DIR (scripts/cluster.sh stop first)"
  fi
  for i in $(seq "$n"); do
    for c in $(client_port "$i") $(peer_port "$i"); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$c") 2>/dev/null; then die "port $c is already in use"; fi
    done
  done
  go build -o bin/ ./cmd/kvd ./cmd/kvctl
  mkdir -p "$DIR"
  for i in $(seq "$n"); do
    cluster+="${cluster:+,}infra$i=http://127.0.0.1:$(peer_port "$i")"
  done
  for i in $(seq "$n"); do
    c="http://127.0.0.1:$(client_port "$i")"
    p="http://127.0.0.1:$(peer_port "$i")"
    # nohup: the members outlive this script and the shell that ran it.
    nohup bin/kvd --name "infra$i" --data-dir "$DIR/infra$i.kvd" \
      --listen-client-urls "$c" --advertise-client-urls "$c" \
      --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token "$TOKEN" >>"$DIR/infra$i.log" 2>&1 </dev/null &
    echo $! >"$DIR/infra$i.pid"
  done
  # Interrupted before every member is healthy: stop the ones started.
  trap 'cmd_stop >&2; exit 130' INT TERM
  for i in $(seq "$n"); do
    local ok=""
    for _ in $(seq 150); do
      if healthy "$i"; then ok=1; break; fi
      is_kvd "$(cat "$DIR/infra$i.pid")" || break
      sleep 0.1
    done
    if [ -z "$ok" ]; then
      echo "cluster.sh: infra$i did not become healthy; last lines of $DIR/infra$i.log:" >&2
      tail -n 20 "$DIR/infra$i.log" >&2
      cmd_stop >&2
      exit 1
    fi
  done
  trap - INT TERM
  # shellcheck disable=SC2046 # one word per member index
  eps=$(endpoints_of $(seq "$n"))
  echo "kvd cluster of $n up (data, logs and pids in $DIR)"
  echo "endpoints: $eps"
  echo "try:       bin/kvctl --endpoints=$eps member list -w table"
  echo "stop with: scripts/cluster.sh stop"
}

cmd_stop() {
  local f pid pids=() left
  for f in "$DIR"/infra*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    if is_kvd "$pid"; then
      kill -TERM "$pid"
      pids+=("$pid")
    fi
    rm -f "$f"
  done
  # Signal all first and then wait, so no member sits waiting on peers that
  # are already gone. They are not children of this shell: poll, not wait.
  for _ in $(seq 100); do
    left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ $left = 1 ] || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "pid $pid ignored SIGTERM for 10s, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  echo "stopped ${#pids[@]} member(s)"
}

cmd_status() {
  local members
  mapfile -t members < <(running_members | sort -n)
  [ ${#members[@]} -gt 0 ] || die "no running members under $DIR"
  [ -x bin/kvctl ] || go build -o bin/ ./cmd/kvctl
  bin/kvctl --endpoints="$(endpoints_of "${members[@]}")" endpoint status -w table
}

cmd_clean() {
  cmd_stop
  rm -rf "$DIR"
  echo "removed $DIR"
}

case ${1:-} in
start) cmd_start "${2:-3}" ;;
stop) cmd_stop ;;
status) cmd_status ;;
clean) cmd_clean ;;
*) die "usage: $0 start [N] | stop | status | clean" ;;
esac
