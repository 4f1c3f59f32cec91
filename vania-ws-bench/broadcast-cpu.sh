#!/usr/bin/env bash
# Where a broadcasting server's CPU goes, ours beside Bun's: `example-demo` and Bun
# (uWebSockets) each run alone on core 0 while `serverload` drives them from core 1 with the same
# broadcast, and `serverload` prints the server's user and system time per delivery, from the
# last join to the last delivery (connecting and joining left out). Rounds alternate between
# the two servers, so that a change in the machine shows in both.
#
#   vania-ws-bench/broadcast-cpu.sh 10000 40 1     # room of 10,000, 40 broadcasts, one at a time
#   vania-ws-bench/broadcast-cpu.sh 1000 3000 8    # room of 1,000, 8 in flight (limited by
#                                                  # serverload's own reading: see BENCHMARKS.md)
#   ROUNDS=5 vania-ws-bench/broadcast-cpu.sh ...   # rounds per server (default 3)
#   SERVERLOAD_REST_MS=200 vania-ws-bench/broadcast-cpu.sh 10000 25 1
#                     # a 200 ms rest before each broadcast, as in the suite's one-at-a-time run
#
# With one broadcast at a time, a delivery is one `send` for both servers, so these are also
# the costs per system call. Bun comes from the suite's npm cache (`target/bench-peers/node`):
# run the suite once first (`cargo run --release -p vania-ws-bench --bin suite -- --smoke
# --all-peers` installs it).
set -euo pipefail
n=${1:?members} m=${2:?broadcasts} w=${3:?broadcasts in flight}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=vania-ws-bench/bench-lib.sh
source "$root/vania-ws-bench/bench-lib.sh"
bun=$target/bench-peers/node/node_modules/.bin/bun
[ -x "$bun" ] || { echo "no Bun at $bun: run the suite once (see the header)" >&2; exit 1; }
build_demo_and_load
run() { # demo|bun -> one line of figures
    local which=$1 port path mode server
    port=$(free_port)
    if [ "$which" = bun ]; then
        APP_PORT=$port taskset -c 0 "$bun" "$root/vania-ws-bench/peers/bun/server.js" >/dev/null &
        path=/ mode=raw-broadcast
    else
        demo_env "$port"
        "${DEMO_ENV[@]}" taskset -c 0 "$demo" &
        path=/ws mode=broadcast
    fi
    server=$!
    wait_for_port "$port" 0.1 || { echo "$which did not start" >&2; kill $server; return 1; }
    printf '%-5s ' "$which"
    SERVERLOAD_PID=$server taskset -c 1 "$load" \
        "ws://127.0.0.1:$port$path" "$mode" "$n" "$m" "$w" | grep '^server' || {
        kill $server; return 1
    }
    kill $server
    wait $server 2>/dev/null || true
}
for _ in $(seq 1 "${ROUNDS:-3}"); do
    run demo
    run bun
done
