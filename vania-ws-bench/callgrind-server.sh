#!/usr/bin/env bash
# The server's instructions per delivery, counted by callgrind: `example-demo` (or the binary
# given) runs under valgrind on core 0 while `serverload` drives it from core 1, once with M=20
# and once with M=120 messages; the difference divided by the difference in deliveries leaves
# out connecting and joining. User-space instructions only: the kernel's share is not counted.
#
#   vania-ws-bench/callgrind-server.sh broadcast 500 [BINARY]   # 500 members
#   vania-ws-bench/callgrind-server.sh echo 100 [BINARY]        # 100 clients, 16 in flight
#   WINDOW=1 vania-ws-bench/callgrind-server.sh broadcast 500   # one broadcast at a time
#
# Batching depends on timing even under valgrind, so repeat it: runs differ by a few percent.
set -euo pipefail
mode=${1:?broadcast or echo}
n=${2:?number of clients}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${3:-$root/target/release/example-demo}
load=$root/target/release/serverload
cargo build --release -q -p example-demo -p vania-ws-bench --bin serverload --manifest-path "$root/Cargo.toml"
port=$((20000 + RANDOM % 20000))
count() { # M -> the server's instructions
    local out
    out=$(mktemp)
    WS_MAX_CONNECTIONS=30000 WS_RATE_LIMIT_PER_SEC=0 WS_PING_INTERVAL_MS=3600000 \
        WS_PONG_TIMEOUT_MS=3600000 WS_SEND_QUEUE_BYTES=1048576 APP_HOST=127.0.0.1 \
        APP_PORT=$port RUST_LOG=warn \
        taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" \
        >/dev/null 2>&1 &
    local server=$!
    for _ in $(seq 1 100); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.3
    done
    taskset -c 1 "$load" "ws://127.0.0.1:$port/ws" "$mode" "$n" "$1" ${WINDOW:+"$WINDOW"} >/dev/null
    kill -INT $server
    wait $server || true
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
    rm -f "$out"
}
low=$(count 20)
high=$(count 120)
echo "$mode, $n clients: $(((high - low) / (100 * n))) instructions per delivery"
