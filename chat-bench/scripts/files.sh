#!/usr/bin/env bash
# Measures file transfers through chat-server while 1,000 clients chat (docs/performance.md,
# "File transfers"): runs alternate between the chat alone and the chat with files of 100 MB
# passed from one extra client to another for as long as it lasts, each on a fresh server.
#
#   chat-bench/scripts/files.sh [PAIRS] [OUT.jsonl]
#
# Needs a release build (cargo build --release -p chat-server -p chat-bench). The chat is an
# open loop: 1 publisher to 1,000 subscribers, 64-byte payloads, for 20 s, at RATE messages/s
# (environment; default 500, which with 1,000 subscribers keeps two cores busy by itself).
set -euo pipefail
cd "$(dirname "$0")/../.."
pairs=${1:-3}
out=${2:-target/files-$(date +%Y%m%d-%H%M%S).jsonl}
bench=target/release/chat-bench
port=12398
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export XDG_DATA_HOME="$dir/data"

run() { # LABEL [chat-bench flags...]
    local label=$1
    shift
    rm -f "$dir"/chat.db*
    target/release/chat-server --port $port --no-log-file --stats-interval 0 --no-monitor \
        --rate-burst 1000000 --rate-per-sec 1000000 --file-rate 0 --max-clients 20000 \
        --db "$dir/chat.db" >/dev/null 2>&1 &
    local pid=$!
    until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.1; done
    "$bench" --server 127.0.0.1:$port --server-pid $pid -n 1000 -p 1 -s 64 \
        --rate "${RATE:-500}" -m "$(( ${RATE:-500} * 20 ))" "$@" | tr -d '\n' | sed "s/^{/{\"label\":\"$label\",/" >>"$out"
    echo >>"$out"
    kill $pid
    wait $pid 2>/dev/null || true
}

for _ in $(seq "$pairs"); do
    run chat
    run chat+files --file-mb 100
done
python3 - "$out" <<'PY'
import json, sys
print(f"{'run':<12} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'lost':>5} {'files':>6} {'MB/s':>8}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    lat = r["latency_us"]
    f = r.get("file") or {}
    print(f"{r['label']:<12} {lat['p50']/1000:>8.1f} {lat['p99']/1000:>8.1f} "
          f"{lat['p999']/1000:>9.1f} {r['lost']:>5} {f.get('transfers', ''):>6} "
          f"{f.get('mb_per_s', 0):>8.1f}")
PY
