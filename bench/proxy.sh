#!/usr/bin/env bash
# Registry gate overhead: a 1 GiB safetensors file and 1,000 small files
# downloaded with curl from the stub Hub directly (following its CDN
# redirect) and through `modelgate proxy` in front of it (spool, sha256
# check, scan, then serve). Reports throughput, time to first byte,
# per-request latency p50/p95 and the gate's peak RSS, which must not grow
# with the file size. Not a test: numbers depend on the machine.
#
#   bench/proxy.sh [--work DIR] [--size-mb MB] [--small N] [--runs N] [--debug]
#
# Builds the release binary and the stub (`cargo run --example hub_stub`)
# unless --debug, which uses the dev builds to check the script itself.
# Prints Markdown on stdout; raw curl timings and time -v logs stay in WORK.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/bench/.work/proxy
SIZE_MB=1024
SMALL=1000
RUNS=3
PROFILE=release
while [ $# -gt 0 ]; do
    case $1 in
        --work) WORK=$2; shift 2 ;;
        --size-mb) SIZE_MB=$2; shift 2 ;;
        --small) SMALL=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --debug) PROFILE=debug; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
log() { echo "proxy-bench: $*" >&2; }
command -v curl >/dev/null || { log "needs curl"; exit 2; }
[ -x /usr/bin/time ] || { log "needs GNU time (/usr/bin/time)"; exit 2; }

cd "$ROOT"
if [ "$PROFILE" = release ]; then
    log "building the release binary and the stub"
    cargo build --quiet --release --bin modelgate --example hub_stub
else
    cargo build --quiet --bin modelgate --example hub_stub
fi
MG=$ROOT/target/$PROFILE/modelgate
STUB=$ROOT/target/$PROFILE/examples/hub_stub

HUB=$WORK/hub
RAW=$WORK/results
mkdir -p "$RAW"
big=$HUB/models/bench/big/model.safetensors
if [ ! -f "$big" ] || [ "$(stat -c %s "$big")" -ne $((SIZE_MB << 20)) ]; then
    log "writing a ${SIZE_MB} MiB safetensors file"
    mkdir -p "$(dirname "$big")"
    python3 - "$big" $((SIZE_MB << 20)) <<'PY'
import json, os, struct, sys
path, total = sys.argv[1], int(sys.argv[2])
n = total - 8 - 128
h = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
h += b" " * (128 - len(h))
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    # Not all zeros: a filesystem or a cache must not get it for free.
    block = os.urandom(1 << 20)
    left = n
    while left:
        k = min(left, len(block))
        f.write(block[:k])
        left -= k
PY
fi
small_dir=$HUB/models/bench/small
if [ "$(find "$small_dir" -name '*.json' 2>/dev/null | wc -l)" -ne "$SMALL" ]; then
    log "writing $SMALL small files"
    rm -rf "$small_dir" && mkdir -p "$small_dir"
    for i in $(seq -w 1 "$SMALL"); do
        printf '{"name": "file %s", "hidden_size": 768, "layers": 12, "pad": "%0400d"}\n' "$i" 0 \
            > "$small_dir/f$i.json"
    done
fi

# The stub, for the whole run.
"$STUB" --root "$HUB" --listen 127.0.0.1:0 > "$RAW/stub.addr" &
STUB_PID=$!
PROXY_PID=
cleanup() {
    [ -n "$PROXY_PID" ] && stop_proxy 2>/dev/null || true
    kill "$STUB_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do [ -s "$RAW/stub.addr" ] && break; sleep 0.1; done
UP=$(head -1 "$RAW/stub.addr")

# Starts the gate under GNU time; its peak RSS is read when it stops.
start_proxy() {
    local name=$1
    shift
    rm -f "$RAW/$name.addr"
    /usr/bin/time -v -o "$RAW/$name.time" \
        "$MG" proxy --listen 127.0.0.1:0 --upstream "$UP" --log-format json "$@" \
        > "$RAW/$name.addr" 2> "$RAW/$name.log" &
    PROXY_PID=$!
    for _ in $(seq 100); do [ -s "$RAW/$name.addr" ] && break; sleep 0.1; done
    GATE=$(sed -n 's/^listening on //p' "$RAW/$name.addr")
}
# GNU time does not pass signals on: stop the gate itself (time's child),
# gracefully, so that time reports its peak RSS.
stop_proxy() {
    local child
    child=$(ps -o pid= --ppid "$PROXY_PID" | tr -d ' ')
    [ -n "$child" ] && kill -TERM "$child"
    wait "$PROXY_PID" || true
    PROXY_PID=
}
rss_mb() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$1"; }

# One line per transfer: total seconds, first-byte seconds, bytes/s, code.
FMT='%{time_total} %{time_starttransfer} %{speed_download} %{http_code}\n'
big_runs() {
    local url=$1 out=$2 follow=$3
    : > "$out"
    for _ in $(seq "$RUNS"); do
        curl -sS $follow -o /dev/null -w "$FMT" "$url" >> "$out"
    done
}
small_runs() {
    local base=$1 out=$2 follow=$3 cfg=$RAW/small.curl
    : > "$cfg"
    for f in "$small_dir"/*.json; do
        printf 'url = "%s/bench/small/resolve/main/%s"\noutput = "/dev/null"\n' "$base" "$(basename "$f")" >> "$cfg"
    done
    curl -sS $follow -K "$cfg" -w "$FMT" > "$out"
}
# p50 and p95 of column 1 (seconds) in milliseconds.
pct() {
    sort -n -k1,1 "$1" | awk '{v[NR]=$1} END {
        p50=v[int(NR*0.50+0.5)]; p95=v[int(NR*0.95+0.5)];
        printf "%.2f ms | %.2f ms", p50*1000, p95*1000 }'
}
mean_speed() { awk '{s+=$3; n++} END {printf "%.0f", s/n/1048576}' "$1"; }
mean_ttfb() { awk '{s+=$2; n++} END {printf "%.3f", s/n}' "$1"; }
mean_total() { awk '{s+=$1; n++} END {printf "%.3f", s/n}' "$1"; }
codes() { awk '{print $4}' "$1" | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}'; }

log "direct from the stub"
big_runs "$UP/bench/big/resolve/main/model.safetensors" "$RAW/direct-big.txt" -L
small_runs "$UP" "$RAW/direct-small.txt" -L

log "through the gate: small files"
start_proxy gate-small
small_runs "$GATE" "$RAW/gate-small.txt" ""
stop_proxy
log "through the gate: the ${SIZE_MB} MiB file"
start_proxy gate-big
big_runs "$GATE/bench/big/resolve/main/model.safetensors" "$RAW/gate-big.txt" ""
stop_proxy
log "through the gate with --cache-dir: one cold download, then the store"
rm -rf "$WORK/store"
start_proxy gate-store --cache-dir "$WORK/store"
big_runs "$GATE/bench/big/resolve/main/model.safetensors" "$RAW/gate-store-cold.txt" ""
big_runs "$GATE/bench/big/resolve/main/model.safetensors" "$RAW/gate-store-warm.txt" ""
stop_proxy
rm -rf "$WORK/store"

cat <<EOF
### Registry gate (\`modelgate proxy\`) against the stub Hub

\`bench/proxy.sh\` ($PROFILE build, $(nproc) cores, curl $(curl --version | head -1 | cut -d' ' -f2)).
Direct = curl from the stub following its CDN redirect; gate = curl
through \`modelgate proxy\` (no \`--cache-dir\`: every request downloaded,
hashed, scanned, then served from the spool).

| ${SIZE_MB} MiB safetensors ($RUNS runs) | mean time | time to first byte | throughput | status |
|---|---|---|---|---|
| direct | $(mean_total "$RAW/direct-big.txt") s | $(mean_ttfb "$RAW/direct-big.txt") s | $(mean_speed "$RAW/direct-big.txt") MiB/s | $(codes "$RAW/direct-big.txt")|
| through the gate | $(mean_total "$RAW/gate-big.txt") s | $(mean_ttfb "$RAW/gate-big.txt") s | $(mean_speed "$RAW/gate-big.txt") MiB/s | $(codes "$RAW/gate-big.txt")|
| gate with \`--cache-dir\`, first download | $(head -1 "$RAW/gate-store-cold.txt" | awk '{printf "%.3f", $1}') s | $(head -1 "$RAW/gate-store-cold.txt" | awk '{printf "%.3f", $2}') s | $(head -1 "$RAW/gate-store-cold.txt" | awk '{printf "%.0f", $3/1048576}') MiB/s | |
| gate with \`--cache-dir\`, from the store | $(mean_total "$RAW/gate-store-warm.txt") s | $(mean_ttfb "$RAW/gate-store-warm.txt") s | $(mean_speed "$RAW/gate-store-warm.txt") MiB/s | $(codes "$RAW/gate-store-warm.txt")|

| $SMALL small files (one connection) | p50 | p95 | status |
|---|---|---|---|
| direct | $(pct "$RAW/direct-small.txt") | $(codes "$RAW/direct-small.txt")|
| through the gate | $(pct "$RAW/gate-small.txt") | $(codes "$RAW/gate-small.txt")|

| gate peak RSS | MB |
|---|---|
| after $SMALL small files | $(rss_mb "$RAW/gate-small.time") |
| after $RUNS × ${SIZE_MB} MiB | $(rss_mb "$RAW/gate-big.time") |
| with \`--cache-dir\`, after 1 + $RUNS × ${SIZE_MB} MiB | $(rss_mb "$RAW/gate-store.time") |
EOF
