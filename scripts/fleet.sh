#!/usr/bin/env bash
# A local Switchboard cluster on loopback: FLEET_NODES `switchboard serve` nodes sharing PostgreSQL and
# Redis behind HAProxy, which health-checks each node's /ready every second and sends new requests and
# calls only to nodes answering 200 (a node shutting down answers 503 first, then finishes its calls).
#
#   scripts/fleet.sh up      start it; the last line printed is the load balancer's URL and a supervisor
#                            API key valid on every node
#   scripts/fleet.sh status  each node's readiness and the load balancer's
#   scripts/fleet.sh down    stop everything `up` started (nodes finish their calls first)
#
# Environment: FLEET_DIR (state and logs; .fleet), FLEET_NODES (2), FLEET_PORT (8100: the load balancer;
# the nodes take the ports after it), DATABASE_URL (the local PostgreSQL's `postgres` database),
# REDIS_HOST and REDIS_PORT (127.0.0.1, 6379), SWITCHBOARD_BIN (the release build, built if missing),
# MODELS_DIR. Every other Switchboard setting in the environment reaches every node.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
FLEET_DIR="${FLEET_DIR:-$root/.fleet}"
FLEET_NODES="${FLEET_NODES:-2}"
FLEET_PORT="${FLEET_PORT:-8100}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
export REDIS_PORT="${REDIS_PORT:-6379}"

say() { printf 'fleet: %s\n' "$*" >&2; }
fail() {
  say "$*"
  exit 1
}

binary() {
  if [ -n "${SWITCHBOARD_BIN:-}" ]; then
    [ -x "$SWITCHBOARD_BIN" ] || fail "SWITCHBOARD_BIN=$SWITCHBOARD_BIN is not an executable"
    echo "$SWITCHBOARD_BIN"
    return
  fi
  local target="${CARGO_TARGET_DIR:-$root/target}"
  if [ ! -x "$target/release/switchboard" ]; then
    say "building the release binary (first time: several minutes)"
    make -C "$root" build >&2
  fi
  echo "$target/release/switchboard"
}

# The pid in FILE if that process is alive.
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Waits until URL answers 200, at most SECONDS.
wait_for() {
  local url="$1" seconds="$2" what="$3"
  local deadline=$((SECONDS + seconds))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" = 200 ]; do
    [ $SECONDS -lt "$deadline" ] || fail "$what did not answer 200 at $url within ${seconds} s (see $FLEET_DIR/*.log)"
    sleep 0.2
  done
}

haproxy_config() {
  cat <<EOF
# Written by scripts/fleet.sh.
global
  pidfile $FLEET_DIR/haproxy.pid
  stats socket $FLEET_DIR/haproxy.sock mode 600 level admin

defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  # A call's WebSocket lasts as long as the call.
  timeout tunnel 2h
  timeout http-request 10s
  # A node that refuses the connection (killed, before the health check sees it) is skipped.
  retries 2
  option redispatch

frontend switchboard
  bind 127.0.0.1:$FLEET_PORT
  default_backend nodes

backend nodes
  balance leastconn
  option httpchk GET /ready
  http-check expect status 200
  default-server inter 1s fall 2 rise 1
EOF
  for i in $(seq 1 "$FLEET_NODES"); do
    echo "  server node$i 127.0.0.1:$((FLEET_PORT + i)) check"
  done
}

up() {
  "$root/scripts/setup.sh"
  command -v haproxy >/dev/null || fail "haproxy is missing (scripts/setup.sh installs it)"
  local bin
  bin="$(binary)"
  mkdir -p "$FLEET_DIR"
  for i in $(seq 1 "$FLEET_NODES"); do
    alive "$FLEET_DIR/node$i.pid" && fail "node $i is already running: scripts/fleet.sh down first"
  done
  say "fetching the default models if missing"
  "$bin" models fetch >&2
  # One data key seals callers' data for every node, so any node reads what another wrote.
  [ -f "$FLEET_DIR/data.key" ] || "$bin" keys data-key >"$FLEET_DIR/data.key"
  chmod 600 "$FLEET_DIR/data.key"
  export DATA_KEY_FILE="$FLEET_DIR/data.key"
  # HAProxy checks /ready every second and drops a node after two failures: a node shutting down says
  # 503 for longer than that before it stops taking connections.
  export SHUTDOWN_DRAIN_MS="${SHUTDOWN_DRAIN_MS:-2500}"
  for i in $(seq 1 "$FLEET_NODES"); do
    mkdir -p "$FLEET_DIR/node$i"
    SERVER_HOST=127.0.0.1 SERVER_PORT=$((FLEET_PORT + i)) DATA_DIR="$FLEET_DIR/node$i" \
      nohup "$bin" serve >"$FLEET_DIR/node$i.log" 2>&1 &
    echo $! >"$FLEET_DIR/node$i.pid"
    say "node $i starting on 127.0.0.1:$((FLEET_PORT + i)) (log: $FLEET_DIR/node$i.log)"
  done
  for i in $(seq 1 "$FLEET_NODES"); do
    wait_for "http://127.0.0.1:$((FLEET_PORT + i))/ready" 300 "node $i"
    say "node $i ready"
  done
  haproxy_config >"$FLEET_DIR/haproxy.cfg"
  haproxy -c -q -f "$FLEET_DIR/haproxy.cfg" || fail "HAProxy refused $FLEET_DIR/haproxy.cfg"
  haproxy -D -f "$FLEET_DIR/haproxy.cfg"
  wait_for "http://127.0.0.1:$FLEET_PORT/ready" 30 "the load balancer"
  say "HAProxy on 127.0.0.1:$FLEET_PORT in front of $FLEET_NODES nodes"
  local key
  key="$("$bin" keys create --role supervisor --name "fleet $(date +%s)")"
  echo "http://127.0.0.1:$FLEET_PORT $key"
}

status() {
  local down=0
  for i in $(seq 1 "$FLEET_NODES"); do
    if alive "$FLEET_DIR/node$i.pid"; then
      echo "node$i 127.0.0.1:$((FLEET_PORT + i)) pid $(cat "$FLEET_DIR/node$i.pid") ready $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((FLEET_PORT + i))/ready" || true)"
    else
      echo "node$i stopped"
      down=1
    fi
  done
  if alive "$FLEET_DIR/haproxy.pid"; then
    echo "haproxy 127.0.0.1:$FLEET_PORT pid $(cat "$FLEET_DIR/haproxy.pid")"
  else
    echo "haproxy stopped"
    down=1
  fi
  return $down
}

# Stops the process in FILE: SIGTERM, then SIGKILL after WAIT seconds.
stop() {
  local file="$1" wait="$2"
  alive "$file" || {
    rm -f "$file"
    return 0
  }
  local pid
  pid="$(cat "$file")"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + wait))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt "$deadline" ]; do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid did not stop within ${wait} s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

down() {
  stop "$FLEET_DIR/haproxy.pid" 10
  for i in $(seq 1 "$FLEET_NODES"); do
    # SHUTDOWN_GRACE_MS (10 s) for the calls, then the rest of the shutdown.
    stop "$FLEET_DIR/node$i.pid" 60
  done
  rm -f "$FLEET_DIR/haproxy.sock"
  say "stopped"
}

case "${1:-}" in
  up) up ;;
  status) status ;;
  down) down ;;
  *)
    echo "usage: scripts/fleet.sh up|status|down (see the top of this file)" >&2
    exit 2
    ;;
esac
