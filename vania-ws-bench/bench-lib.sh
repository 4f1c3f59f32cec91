# Shared by the benchmark scripts of this directory (`source`d, not run, with `$root` set to
# the workspace).

# Where cargo builds, and the binaries the scripts run from there.
target=${CARGO_TARGET_DIR:-$root/target}
demo=$target/release/example-demo
load=$target/release/serverload

# Builds `example-demo` and `serverload` in `$root`. Two builds, as the suite builds ours: one
# command for both would build the demo's library only (`--bin` selects targets in every
# package), and with the bench's features unified in.
build_demo_and_load() {
    cargo build --release -q -p example-demo --bin example-demo --manifest-path "$root/Cargo.toml"
    cargo build --release -q -p vania-ws-bench --bin serverload --manifest-path "$root/Cargo.toml"
}

# Stops the script unless valgrind is installed.
require_valgrind() {
    command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
}

# Prints a free port: one that nothing answers on yet.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 20000))
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
}

# Sets DEMO_ENV to an `env` command with the settings the suite gives our servers
# (`vania_env` in suite/peers.rs), listening on port $1. Run the server as
# `"${DEMO_ENV[@]}" taskset -c 0 … &`: `env` execs it, so `$!` is the server's pid.
demo_env() {
    DEMO_ENV=(env WS_MAX_CONNECTIONS=30000 WS_RATE_LIMIT_PER_SEC=0 WS_PING_INTERVAL_MS=3600000
        WS_PONG_TIMEOUT_MS=3600000 WS_SEND_QUEUE_BYTES=1048576 APP_HOST=127.0.0.1
        APP_PORT="$1" RUST_LOG=warn)
}

# Waits until something answers on port $1, polling every $2 seconds, at most 100 times;
# fails if nothing does.
wait_for_port() {
    for _ in $(seq 1 100); do
        (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep "$2"
    done
    return 1
}
