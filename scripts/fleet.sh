#!/usr/bin/env bash
# A local Switchboard cluster on loopback: FLEET_NODES `switchboard serve` nodes sharing PostgreSQL and
# Redis behind HAProxy, which health-checks each node's /ready every second and sends new requests and
# calls only to nodes answering 200 (a node shutting down answers 503 first, then finishes its calls).
#
#   scripts/fleet.sh up      start it; the last line printed is the load balancer's URL and a supervisor
#                            API key valid on every node
#   scripts/fleet.sh status  each node's readiness, the load balancer's, Prometheus' and Alertmanager's
#   scripts/fleet.sh down    stop everything `up` started (nodes finish their calls first)
#
# Prometheus scrapes every node's /metrics (job `switchboard`) and evaluates the shipped alert rules
# (deploy/prometheus/alerts.yaml); Alertmanager receives what fires (its API: /api/v2/alerts).
#
# Environment: FLEET_DIR (state and logs; .fleet), FLEET_NODES (2), FLEET_PORT (8100: the load balancer;
# the nodes take the ports after it), DATABASE_URL (the local PostgreSQL's `postgres` database),
# REDIS_HOST and REDIS_PORT (127.0.0.1, 6379; REDIS_SENTINELS instead puts the nodes on the master
# those Sentinels name), SWITCHBOARD_BIN (the release build, built if missing),
# MODELS_DIR (shared by every node; switchboard's default models directory), WHISPER_THREADS and
# LLM_THREADS (the machine's cores divided among the nodes), FLEET_PROMETHEUS_PORT (9090),
# FLEET_ALERTMANAGER_PORT (9093), FLEET_SCRAPE_INTERVAL (5s), FLEET_ALERT_RULES (the shipped rules),
# FLEET_ALERT_WEBHOOK (unset: alerts stay in Alertmanager; a URL: Alertmanager posts them there). Every
# other Switchboard setting in the environment reaches every node.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
FLEET_DIR="${FLEET_DIR:-$root/.fleet}"
FLEET_NODES="${FLEET_NODES:-2}"
FLEET_PORT="${FLEET_PORT:-8100}"
FLEET_PROMETHEUS_PORT="${FLEET_PROMETHEUS_PORT:-9090}"
FLEET_ALERTMANAGER_PORT="${FLEET_ALERTMANAGER_PORT:-9093}"
FLEET_SCRAPE_INTERVAL="${FLEET_SCRAPE_INTERVAL:-5s}"
FLEET_ALERT_RULES="${FLEET_ALERT_RULES:-$root/deploy/prometheus/alerts.yaml}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
export REDIS_PORT="${REDIS_PORT:-6379}"
# Every node has a DATA_DIR of its own, but they share the models `up` fetches (where `switchboard models
# fetch` puts them without MODELS_DIR, unless MODELS_DIR says otherwise).
export MODELS_DIR="${MODELS_DIR:-${DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/switchboard}/models}"

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

# Waits until URL answers 200, at most SECONDS; on failure, says what the URL answered last. With a
# PIDFILE and LOG, a process that exits meanwhile fails at once with the end of its log.
wait_for() {
  local url="$1" seconds="$2" what="$3" pidfile="${4:-}" log="${5:-}"
  local deadline=$((SECONDS + seconds))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" = 200 ]; do
    if [ -n "$pidfile" ] && ! alive "$pidfile"; then
      tail -n 5 "$log" >&2 || true
      fail "$what exited before it was ready (log: $log)"
    fi
    if [ $SECONDS -ge "$deadline" ]; then
      say "$what answered at $url: $(curl -s "$url" | head -c 2000 || true)"
      fail "$what did not answer 200 at $url within ${seconds} s (see $FLEET_DIR/*.log)"
    fi
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

prometheus_config() {
  cat <<EOF
# Written by scripts/fleet.sh.
global:
  scrape_interval: $FLEET_SCRAPE_INTERVAL
  evaluation_interval: $FLEET_SCRAPE_INTERVAL
rule_files:
  - $FLEET_ALERT_RULES
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$FLEET_ALERTMANAGER_PORT"]
scrape_configs:
  - job_name: switchboard
    static_configs:
      - targets:
EOF
  for i in $(seq 1 "$FLEET_NODES"); do
    echo "          - 127.0.0.1:$((FLEET_PORT + i))"
  done
}

alertmanager_config() {
  cat <<EOF
# Written by scripts/fleet.sh.
route:
  receiver: fleet
  group_by: [alertname, instance]
  group_wait: 5s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: fleet
EOF
  if [ -n "${FLEET_ALERT_WEBHOOK:-}" ]; then
    printf '    webhook_configs:\n      - url: "%s"\n' "$FLEET_ALERT_WEBHOOK"
  fi
}

# Prometheus and Alertmanager, each on loopback with its data in FLEET_DIR.
monitoring_up() {
  command -v prometheus >/dev/null || fail "prometheus is missing (scripts/setup.sh installs it)"
  command -v prometheus-alertmanager >/dev/null ||
    fail "prometheus-alertmanager is missing (scripts/setup.sh installs it)"
  alertmanager_config >"$FLEET_DIR/alertmanager.yml"
  mkdir -p "$FLEET_DIR/alertmanager"
  nohup prometheus-alertmanager --config.file="$FLEET_DIR/alertmanager.yml" \
    --storage.path="$FLEET_DIR/alertmanager" --cluster.listen-address= \
    --web.listen-address="127.0.0.1:$FLEET_ALERTMANAGER_PORT" >"$FLEET_DIR/alertmanager.log" 2>&1 &
  echo $! >"$FLEET_DIR/alertmanager.pid"
  prometheus_config >"$FLEET_DIR/prometheus.yml"
  promtool check config "$FLEET_DIR/prometheus.yml" >&2 ||
    fail "Prometheus refused $FLEET_DIR/prometheus.yml (rules: $FLEET_ALERT_RULES)"
  mkdir -p "$FLEET_DIR/prometheus"
  nohup prometheus --config.file="$FLEET_DIR/prometheus.yml" \
    --storage.tsdb.path="$FLEET_DIR/prometheus" \
    --web.listen-address="127.0.0.1:$FLEET_PROMETHEUS_PORT" >"$FLEET_DIR/prometheus.log" 2>&1 &
  echo $! >"$FLEET_DIR/prometheus.pid"
  wait_for "http://127.0.0.1:$FLEET_ALERTMANAGER_PORT/-/ready" 30 "Alertmanager" \
    "$FLEET_DIR/alertmanager.pid" "$FLEET_DIR/alertmanager.log"
  wait_for "http://127.0.0.1:$FLEET_PROMETHEUS_PORT/-/ready" 30 "Prometheus" \
    "$FLEET_DIR/prometheus.pid" "$FLEET_DIR/prometheus.log"
  say "Prometheus on http://127.0.0.1:$FLEET_PROMETHEUS_PORT scraping $FLEET_NODES nodes every $FLEET_SCRAPE_INTERVAL; Alertmanager on http://127.0.0.1:$FLEET_ALERTMANAGER_PORT"
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
  for p in haproxy prometheus alertmanager; do
    alive "$FLEET_DIR/$p.pid" && fail "$p is already running: scripts/fleet.sh down first"
  done
  say "fetching the default models if missing"
  "$bin" models fetch >&2
  # One data key seals callers' data for every node, so any node reads what another wrote.
  [ -f "$FLEET_DIR/data.key" ] || "$bin" keys data-key >"$FLEET_DIR/data.key"
  chmod 600 "$FLEET_DIR/data.key"
  export DATA_KEY_FILE="$FLEET_DIR/data.key"
  # The nodes share this machine's cores: each gets its share for Whisper and the model, unless told.
  # Two nodes on 2 cores with 2 threads each: voice-to-voice p95 12.2 s at 2 calls; with 1 each: 1.4 s.
  local share=$(($(nproc) / FLEET_NODES))
  [ "$share" -ge 1 ] || share=1
  export WHISPER_THREADS="${WHISPER_THREADS:-$share}" LLM_THREADS="${LLM_THREADS:-$share}"
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
    wait_for "http://127.0.0.1:$((FLEET_PORT + i))/ready" 300 "node $i" "$FLEET_DIR/node$i.pid" \
      "$FLEET_DIR/node$i.log"
    say "node $i ready"
  done
  haproxy_config >"$FLEET_DIR/haproxy.cfg"
  haproxy -c -q -f "$FLEET_DIR/haproxy.cfg" || fail "HAProxy refused $FLEET_DIR/haproxy.cfg"
  haproxy -D -f "$FLEET_DIR/haproxy.cfg"
  wait_for "http://127.0.0.1:$FLEET_PORT/ready" 30 "the load balancer"
  say "HAProxy on 127.0.0.1:$FLEET_PORT in front of $FLEET_NODES nodes"
  monitoring_up
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
  local name port
  for name in haproxy prometheus alertmanager; do
    case $name in
      haproxy) port=$FLEET_PORT ;;
      prometheus) port=$FLEET_PROMETHEUS_PORT ;;
      alertmanager) port=$FLEET_ALERTMANAGER_PORT ;;
    esac
    if alive "$FLEET_DIR/$name.pid"; then
      echo "$name 127.0.0.1:$port pid $(cat "$FLEET_DIR/$name.pid")"
    else
      echo "$name stopped"
      down=1
    fi
  done
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
  stop "$FLEET_DIR/prometheus.pid" 30
  stop "$FLEET_DIR/alertmanager.pid" 30
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
