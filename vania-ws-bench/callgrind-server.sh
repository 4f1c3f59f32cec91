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
target=${CARGO_TARGET_DIR:-$root/target}
bin=${3:-$target/release/example-demo}
load=$target/release/serverload
# Two builds, as the suite builds ours: one command for both would build the demo's library
# only (`--bin` selects targets in every package), and with the bench's features unified in.
cargo build --release -q -p example-demo --bin example-demo --manifest-path "$root/Cargo.toml"
cargo build --release -q -p vania-ws-bench --bin serverload --manifest-path "$root/Cargo.toml"
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
# A free port: one that nothing answers on yet.
while :; do
    port=$((20000 + RANDOM % 20000))
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
done
count() { # M -> the server's instructions, or a failure
    local out up=""
    out=$(mktemp)
    # The settings the suite gives our servers (`vania_env` in suite/peers.rs).
    WS_MAX_CONNECTIONS=30000 WS_RATE_LIMIT_PER_SEC=0 WS_PING_INTERVAL_MS=3600000 \
        WS_PONG_TIMEOUT_MS=3600000 WS_SEND_QUEUE_BYTES=1048576 APP_HOST=127.0.0.1 \
        APP_PORT=$port RUST_LOG=warn \
        taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" \
        >/dev/null 2>&1 &
    local server=$!
    for _ in $(seq 1 100); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && up=yes && break
        sleep 0.3
    done
    if [ -z "$up" ] || ! taskset -c 1 "$load" "ws://127.0.0.1:$port/ws" "$mode" "$n" "$1" \
        ${WINDOW:+"$WINDOW"} >/dev/null; then
        kill -KILL $server 2>/dev/null || true
        rm -f "$out"
        return 1
    fi
    kill -INT $server
    wait $server || true
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
    rm -f "$out"
}
# Command substitution ignores `set -e`: check each count.
low=$(count 20) && [ -n "$low" ] || { echo "the run with M=20 failed" >&2; exit 1; }
high=$(count 120) && [ -n "$high" ] || { echo "the run with M=120 failed" >&2; exit 1; }
echo "$mode, $n clients: $(((high - low) / (100 * n))) instructions per delivery"
