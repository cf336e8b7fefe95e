# Shared by scripts/bench-*: sourced, not run. Builds the release binaries, starts and stops
# `herald serve` on loopback with a fresh SQLite database in a temp dir, and records results in
# BENCHMARKS.md between per-benchmark markers. Callers have `set -euo pipefail`.

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$BENCH_ROOT"

BENCH_NAME="$(basename "$0")"
BENCH_CMD="scripts/$BENCH_NAME${*:+ $*}"
BENCH_TMP="$(mktemp -d -t herald-bench.XXXXXX)"
BENCH_REPORT="$BENCH_TMP/report.md"
BENCH_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
HERALD_PID=""
BENCH_CHILD_PIDS=()
ADMIN_TOKEN="bench-admin-token-0123456789"
HERALD="$BENCH_ROOT/target/release/herald"
BENCH_BIN="$BENCH_ROOT/target/release/examples/herald_bench"
: > "$BENCH_REPORT"

bench_cleanup() {
    local status=$?
    if [[ -n "$HERALD_PID" ]] && kill -0 "$HERALD_PID" 2>/dev/null; then
        kill -TERM "$HERALD_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$HERALD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$HERALD_PID" 2>/dev/null || true
        wait "$HERALD_PID" 2>/dev/null || true
    fi
    local pid
    for pid in "${BENCH_CHILD_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $status -ne 0 && -f "$BENCH_TMP/herald.log" ]]; then
        echo "--- last lines of herald's log ---" >&2
        tail -n 20 "$BENCH_TMP/herald.log" >&2 || true
    fi
    rm -rf "$BENCH_TMP"
    exit $status
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }

# Builds the server binary and, separately, the load driver, so the server is built exactly as
# it ships (the driver's dev-dependency features must not leak into it).
bench_build() {
    log "building release binaries (cargo build --release)"
    cargo build --release --quiet -p herald --bin herald
    if [[ "${1:-}" != "server-only" ]]; then
        cargo build --release --quiet -p herald --example herald_bench
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null \
        || "$BENCH_BIN" free-port
}

# herald_start [ENV=VALUE ...]: starts `herald serve` with a fresh database unless
# HERALD_DATABASE_URL is passed; waits for /readyz. Sets HERALD_URL and HERALD_PID. The per-key
# rate limit is lifted (the benchmarks measure the server, one key drives all the load); set
# HERALD_RATE_LIMIT_PER_MINUTE to measure with a limit.
herald_start() {
    local port
    [[ "$BENCH_BACKGROUND" != "?" ]] || bench_wait_quiet
    port="$(free_port)"
    HERALD_URL="http://127.0.0.1:$port"
    env HERALD_LISTEN="127.0.0.1:$port" \
        HERALD_DATABASE_URL="$BENCH_TMP/herald.db" \
        HERALD_ADMIN_TOKEN="$ADMIN_TOKEN" \
        HERALD_OUTBOUND_ALLOW="127.0.0.1/32" \
        HERALD_RATE_LIMIT_PER_MINUTE="${HERALD_RATE_LIMIT_PER_MINUTE:-1000000000}" \
        HERALD_LOG_FORMAT=text \
        RUST_LOG="${RUST_LOG:-warn}" \
        "$@" "$HERALD" serve >>"$BENCH_TMP/herald.log" 2>&1 &
    HERALD_PID=$!
    local i
    for i in $(seq 1 200); do
        if curl -fsS "$HERALD_URL/readyz" >/dev/null 2>&1; then
            log "herald pid $HERALD_PID listening on $HERALD_URL"
            return 0
        fi
        kill -0 "$HERALD_PID" 2>/dev/null || { log "herald exited during start-up"; return 1; }
        sleep 0.1
    done
    log "herald did not become ready in 20 s"
    return 1
}

herald_stop() {
    if [[ -n "$HERALD_PID" ]]; then
        kill -TERM "$HERALD_PID" 2>/dev/null || true
        wait "$HERALD_PID" 2>/dev/null || true
        HERALD_PID=""
    fi
}

# CPU (in cores) the whole machine is busy with, sampled over $1 seconds.
machine_busy() {
    local a b
    a="$(awk '/^cpu / { print $2+$3+$4+$7+$8+$9 }' /proc/stat)"
    sleep "$1"
    b="$(awk '/^cpu / { print $2+$3+$4+$7+$8+$9 }' /proc/stat)"
    awk -v a="$a" -v b="$b" -v s="$1" 'BEGIN { printf "%.2f", (b - a) / 100 / s }'
}

# The machine is shared: before measuring, wait (at most BENCH_QUIET_WAIT s, default 300) until
# other processes use less than BENCH_QUIET_CPU cores (default 0.3), and record what they used.
bench_wait_quiet() {
    local limit="${BENCH_QUIET_CPU:-0.3}" waited=0 max="${BENCH_QUIET_WAIT:-300}" busy
    while :; do
        busy="$(machine_busy 2)"
        if awk -v b="$busy" -v l="$limit" 'BEGIN { exit !(b < l) }'; then break; fi
        if (( waited >= max )); then
            log "machine still busy ($busy cores used by other processes) after ${max} s; measuring anyway"
            break
        fi
        (( waited == 0 )) && log "machine busy ($busy cores used by other processes); waiting up to ${max} s for it to calm down"
        sleep 5; waited=$((waited + 7))
    done
    BENCH_BACKGROUND="$busy"
}
BENCH_BACKGROUND="?"

machine_line() {
    local cpu
    cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "$(nproc) cores ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r); shared machine: load average $BENCH_LOAD, other processes used $BENCH_BACKGROUND cores just before the measurement"
}

# bench_record TITLE: writes the collected report (a markdown table body in $BENCH_REPORT) into
# BENCHMARKS.md between this benchmark's markers, replacing the previous result. Set
# BENCH_NO_RECORD=1 to leave BENCHMARKS.md alone.
bench_record() {
    local title="$1" file="$BENCH_ROOT/BENCHMARKS.md" block="$BENCH_TMP/block.md"
    local rev dirty=""
    rev="$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if ! git -C "$BENCH_ROOT" diff --quiet HEAD -- crates 2>/dev/null; then dirty=" + uncommitted changes"; fi
    {
        echo "<!-- $BENCH_NAME:begin (written by scripts/$BENCH_NAME; edit outside the markers) -->"
        echo "### $title"
        echo
        echo "Command: \`$BENCH_CMD\` · date: $(date -u '+%Y-%m-%d %H:%M UTC') · machine: $(machine_line) · commit: $rev$dirty"
        echo
        echo "| measurement | result |"
        echo "|---|---|"
        cat "$BENCH_REPORT"
        echo "<!-- $BENCH_NAME:end -->"
    } > "$block"
    cat "$block"
    if [[ "${BENCH_NO_RECORD:-0}" == "1" ]]; then
        log "BENCH_NO_RECORD=1: BENCHMARKS.md left unchanged"
        return 0
    fi
    [[ -f "$file" ]] || printf '# Herald benchmarks\n\n' > "$file"
    if grep -q "<!-- $BENCH_NAME:begin" "$file"; then
        awk -v name="$BENCH_NAME" -v blockfile="$block" '
            index($0, "<!-- " name ":begin") == 1 { while ((getline line < blockfile) > 0) print line; skip = 1; next }
            index($0, "<!-- " name ":end") == 1 { skip = 0; next }
            !skip { print }
        ' "$file" > "$BENCH_TMP/BENCHMARKS.md.new"
        cat "$BENCH_TMP/BENCHMARKS.md.new" > "$file"
    else
        { echo; cat "$block"; } >> "$file"
    fi
    log "result recorded in BENCHMARKS.md"
}
