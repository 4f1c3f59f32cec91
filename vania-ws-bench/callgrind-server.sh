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
# shellcheck source=vania-ws-bench/bench-lib.sh
source "$root/vania-ws-bench/bench-lib.sh"
bin=${3:-$demo}
build_demo_and_load
require_valgrind
port=$(free_port)
count() { # M -> the server's instructions, or a failure
    local out
    out=$(mktemp)
    demo_env "$port"
    "${DEMO_ENV[@]}" taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$bin" >/dev/null 2>&1 &
    local server=$!
    if ! wait_for_port "$port" 0.3 || ! taskset -c 1 "$load" "ws://127.0.0.1:$port/ws" "$mode" "$n" "$1" \
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
