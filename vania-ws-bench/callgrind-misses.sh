#!/usr/bin/env bash
# Which of the server's memory accesses miss the cache, per delivery, for one broadcast at a
# time to N members: the cost that an instruction count does not show once the members' state
# outgrows the caches (10,000 members hold tens of megabytes; a broadcast walks all of it).
#
#   vania-ws-bench/callgrind-misses.sh 10000 [M] [BINARY]   # M broadcasts, default 20
#   TOP=40 KEEP_DUMP=misses.out vania-ws-bench/callgrind-misses.sh 10000
#                     # 40 functions, and keep callgrind's dump (its lines name source lines)
#
# `example-demo` (or the binary given) runs under callgrind's cache simulator on core 0, with
# a last-level cache of LL_BYTES (default 4 MiB, a core's share of these machines' L3), while
# `serverload` drives it from core 1 with `SERVERLOAD_PAUSE`: the counts are zeroed once every
# member has joined and dumped after the last delivery, before anyone closes, so they hold the
# broadcasts and nothing else. Prints the totals per delivery, then the functions that miss
# most, by misses of the last level (reads and writes) per delivery.
#
# The simulator is a model (no prefetcher, one core's share of L3), so its counts rank the
# sources of misses and compare builds; they are not the machine's own counts, which these VMs
# do not expose.
set -euo pipefail
n=${1:?number of members}
m=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=vania-ws-bench/bench-lib.sh
source "$root/vania-ws-bench/bench-lib.sh"
bin=${3:-$demo}
build_demo_and_load
require_valgrind
port=$(free_port)
out=$(mktemp)
server=
# Whatever stops this script, the server under valgrind goes with it.
# (`|| true`: under `set -e`, a failing command would end the trap before the copy.)
trap '[ -n "$server" ] && { kill -KILL "$server" 2>/dev/null || true; }
      [ -n "${KEEP_DUMP:-}" ] && { cp "$out".1 "$KEEP_DUMP" || true; }; rm -f "$out" "$out".*' EXIT
demo_env "$port"
# Uncompressed names: a dump after a zero would otherwise name functions by ids it never
# defines.
"${DEMO_ENV[@]}" taskset -c 0 valgrind --tool=callgrind --cache-sim=yes \
    --LL="${LL_BYTES:-4194304}",16,64 --compress-strings=no --compress-pos=no \
    --callgrind-out-file="$out" "$bin" >/dev/null 2>&1 &
server=$!
wait_for_port "$port" 0.3 || { kill -KILL $server; echo "the server did not start" >&2; exit 1; }
coproc LOAD { SERVERLOAD_PAUSE=1 taskset -c 1 "$load" "ws://127.0.0.1:$port/ws" broadcast "$n" "$m" 1; }
# Bash unsets LOAD and LOAD_PID, and closes their descriptors, once the coprocess ends: keep
# copies.
load_pid=$LOAD_PID
exec {from_load}<&"${LOAD[0]}" {to_load}>&"${LOAD[1]}"
step() { # expected line from serverload, callgrind_control flag
    local line
    read -r line <&"$from_load" || { echo "serverload stopped before '$1'" >&2; return 1; }
    [ "$line" = "$1" ] || { echo "serverload said '$line', not '$1'" >&2; return 1; }
    # A zero that failed would leave connecting and joining in the counts: stop instead.
    callgrind_control "$2" "$server" >/dev/null || { echo "callgrind_control $2 failed" >&2; return 1; }
    echo go >&"$to_load"
}
if ! step joined -z || ! step delivered -d; then
    kill -KILL "$load_pid" 2>/dev/null || true
    exit 1
fi
cat <&"$from_load" >/dev/null || true
wait "$load_pid" || { echo "serverload failed" >&2; exit 1; }
kill -KILL $server 2>/dev/null || true
wait $server 2>/dev/null || true
dump=$out.1
[ -s "$dump" ] || { echo "callgrind wrote no dump" >&2; exit 1; }
deliveries=$((n * m))
# Self cost per function: cost lines after `fn=`, except the one after each `calls=` (a
# callee's inclusive cost).
awk -v d="$deliveries" '
    /^events:/ { for (i = 2; i <= NF; i++) ev[i - 1] = $i; ne = NF - 1; next }
    /^fn=/ { fn = substr($0, 4); next }
    /^calls=/ { skip = 1; next }
    /^[0-9+*-]/ {
        if (skip) { skip = 0; next }
        for (i = 2; i <= NF; i++) { cost[fn, i - 1] += $i; total[i - 1] += $i }
        fns[fn] = 1
        next
    }
    END {
        for (i = 1; i <= ne; i++) col[ev[i]] = i
        printf "%d deliveries; per delivery: %.0f instructions, %.1f L1 misses, %.1f LL misses (%.1f reads, %.1f writes)\n",
            d, total[col["Ir"]] / d, (total[col["D1mr"]] + total[col["D1mw"]]) / d,
            (total[col["DLmr"]] + total[col["DLmw"]]) / d, total[col["DLmr"]] / d, total[col["DLmw"]] / d
        printf "%8s %8s  %s\n", "LL miss", "instr", "function (self)"
        for (f in fns) {
            ll = (cost[f, col["DLmr"]] + cost[f, col["DLmw"]]) / d
            if (ll >= 0.05) printf "%8.2f %8.1f  %s\n", ll, cost[f, col["Ir"]] / d, f
        }
    }' "$dump" | { read -r head; echo "$head"; read -r cols; echo "$cols"; sort -rn | head -"${TOP:-25}"; }
