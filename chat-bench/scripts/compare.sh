#!/usr/bin/env bash
# Runs the fan-out, latency, idle and stalled-reader measurements of docs/performance.md
# against chat-server and redis-server, alternating between the two, and prints a table.
#
#   chat-bench/scripts/compare.sh [RUNS] [OUT.jsonl]
#
# Needs a release build (cargo build --release -p chat-server -p chat-bench) and Debian's
# redis-server. Each scenario starts a fresh server, so one run cannot warm the next.
#
# Environment:
#   SERVERS    the chat-server builds to measure, as NAME=BINARY pairs separated by spaces
#              (default: chat=target/release/chat-server); to compare two builds, e.g.
#              SERVERS="old=/tmp/chat-server-old new=target/release/chat-server"
#   REDIS      0 to leave Redis out (default 1)
#   SCENARIOS  the scenarios to run, separated by spaces (default: all of them)
#   TRANSPORTS plain, tls, or both, separated by spaces (default: plain); with tls, the chat
#              servers are measured over TLS with the certificate they make at first start,
#              and Redis over --tls-port with the same certificate (the chat-server builds
#              must speak TLS)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
out=${2:-target/compare-$(date +%Y%m%d-%H%M%S).jsonl}
bench=target/release/chat-bench
chat_port=12399
redis_port=16399
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Each chat-server run stores its messages in a fresh database, durably, as it does by default.
db_dir=$(mktemp -d)
trap 'rm -rf "$db_dir"' EXIT
servers=${SERVERS:-chat=target/release/chat-server}
transports=${TRANSPORTS:-plain}
# Systems as KIND|TRANSPORT|NAME=BINARY (the binary for chat servers only).
systems=""
for t in $transports; do
    for s in $servers; do systems="$systems chat|$t|$s"; done
    [ "${REDIS:-1}" = 0 ] || systems="$systems redis|$t|"
done
export XDG_DATA_HOME="$db_dir/data"
fingerprint=""
if [[ " $transports " == *" tls "* ]]; then
    first=${servers%% *}
    # Makes the certificate (data folder/chat-suite/tls) that every TLS run presents.
    fingerprint=$("${first#*=}" fingerprint)
fi
tls_dir="$db_dir/data/chat-suite/tls"
wanted() { [ -z "${SCENARIOS:-}" ] || [[ " $SCENARIOS " == *" $1 "* ]]; }

# NAME=BINARY TRANSPORT
start_chat() {
    local binary=${1#*=}
    label=${1%%=*}
    [ "$2" = plain ] || label="$label+$2"
    rm -f "$db_dir"/chat.db*
    "$binary" --port $chat_port --no-log-file --stats-interval 0 \
        --rate-burst 1000000 --rate-per-sec 1000000 --http-port 0 --ws-port 0 \
        --max-clients 20000 --db "$db_dir/chat.db" >/dev/null 2>&1 &
    pid=$!
    until (exec 3<>/dev/tcp/127.0.0.1/$chat_port) 2>/dev/null; do sleep 0.1; done
    addr=127.0.0.1:$chat_port proto=chat
}
# TRANSPORT
start_redis() {
    local port_args=(--port $redis_port)
    label=redis
    if [ "$1" = tls ]; then
        port_args=(--port 0 --tls-port $redis_port --tls-cert-file "$tls_dir/cert.pem"
            --tls-key-file "$tls_dir/key.pem" --tls-auth-clients no)
        label=redis+tls
    fi
    redis-server "${port_args[@]}" --bind 127.0.0.1 --save '' --appendonly no \
        --maxclients 20000 >/dev/null 2>&1 &
    pid=$!
    until (exec 3<>/dev/tcp/127.0.0.1/$redis_port) 2>/dev/null; do sleep 0.1; done
    addr=127.0.0.1:$redis_port proto=redis
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

# scenario name, then chat-bench arguments
scenario() {
    local name=$1; shift
    wanted "$name" || return 0
    for run in $(seq "$runs"); do
        for system in $systems; do
            IFS='|' read -r kind transport build <<< "$system"
            case $kind in
                chat) start_chat "$build" "$transport" ;;
                redis) start_redis "$transport" ;;
            esac
            tls_args=()
            [ "$transport" = plain ] || tls_args=(--tls --trust-fingerprint "$fingerprint")
            if "$bench" --protocol "$proto" --server "$addr" --server-pid "$pid" "${tls_args[@]}" "$@" \
                > target/compare-last.json; then
                python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["scenario"]=sys.argv[2]; r["run"]=int(sys.argv[3]); r["system"]=sys.argv[4]; print(json.dumps(r))' \
                    target/compare-last.json "$name" "$run" "$label" >> "$out"
            else
                echo "$name run $run on $label failed" >&2
            fi
            stop
        done
    done
}

scenario fanout-w64 -n 1000 -p 1 -s 64 -m 100000 --window 64
scenario fanout-w256 -n 1000 -p 1 -s 64 -m 100000 --window 256
scenario open-500 -n 1000 -p 1 -s 64 -m 5000 --rate 500
scenario open-2000 -n 1000 -p 1 -s 64 -m 20000 --rate 2000
scenario stalled-none -n 999 -p 1 -s 64 -m 100000 --window 64
scenario stalled-one -n 999 --stalled 1 -p 1 -s 64 -m 100000 --window 64
# Few subscribers: the messages, each stored before its echo, are what costs.
scenario store-w64 -n 10 -p 1 -s 64 -m 200000 --window 64
scenario idle-10000 --idle 10000

python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'scenario':<14} {'server':<10} {'run':>3} {'deliveries/s':>13} {'ns/delivery':>11} {'gen ns':>6} {'p50 us':>8} {'p99 us':>8} {'lost':>5} {'bytes/conn':>10}")
for r in rows:
    sp = r.get("server_process") or {}
    lat = r.get("latency_us") or {}
    print(f"{r['scenario']:<14} {r.get('system', r['protocol']):<10} {r['run']:>3} "
          f"{r.get('deliveries_per_s', 0):>13,.0f} {sp.get('cpu_ns_per_delivery', 0):>11.0f} "
          f"{r.get('generator_cpu_ns_per_delivery', 0):>6.0f} "
          f"{lat.get('p50', 0):>8} {lat.get('p99', 0):>8} {r.get('lost', 0):>5} "
          f"{r.get('server_bytes_per_connection', 0):>10.0f}")
print("raw results:", sys.argv[1])
PY
