#!/usr/bin/env bash
# Scale-out benchmark: manifest mode over N generated small files (default
# 100,000, with duplicate blobs) and over the labelled corpus: cold cache,
# warm cache, and 1/2/4 parallel shards sharing one cache. Prints a table of
# files/s and peak RSS (GNU time -v) per run.
#   bench/scaleout.sh [BINARY] [FILES] [CORPUS_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "${1:-$root/target/release/modelgate}")"
files="${2:-100000}"
corpus="${3:-$root/tests/fixtures}"
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 "$root/bench/gen_tree.py" "$work/gen" "$files"

# run NAME SHARDS CACHE_ARGS...: all shards in parallel, wall time and the
# largest peak RSS of any shard.
run() {
    local name="$1" shards="$2"; shift 2
    local start end n rss
    start=$(date +%s.%N)
    for i in $(seq 0 $((shards - 1))); do
        /usr/bin/time -v -o "$work/time.$i" "$bin" scan --manifest "$work/m.jsonl" \
            --results "$work/r.$i.jsonl" --shard "$i/$shards" --quiet "$@" || [ $? -eq 1 ] &
    done
    wait
    end=$(date +%s.%N)
    n=$(cat "$work"/r.*.jsonl | wc -l)
    rss=$(grep -h 'Maximum resident' "$work"/time.* | awk '{print $NF}' | sort -n | tail -1)
    printf '| %-28s | %6d | %2d | %8.2f | %10.0f | %8d |\n' "$name" "$n" "$shards" \
        "$(echo "$end - $start" | bc)" "$(echo "$n / ($end - $start)" | bc -l)" "$rss"
    rm -f "$work"/r.*.jsonl "$work"/time.*
}

echo "| run | files | shards | seconds | files/s | peak RSS KiB |"
echo "|---|---|---|---|---|---|"
for set in gen corpus; do
    dir="$work/gen"; [ "$set" = corpus ] && dir="$corpus"
    s=$(date +%s.%N); "$bin" manifest "$dir" > "$work/m.jsonl" || true; e=$(date +%s.%N)
    printf '| %-28s | %6d |  - | %8.2f | %10.0f | - |\n' "$set: manifest (hash)" \
        "$(wc -l < "$work/m.jsonl")" "$(echo "$e - $s" | bc)" "$(echo "$(wc -l < "$work/m.jsonl") / ($e - $s)" | bc -l)"
    run "$set: no cache" 1 --no-cache
    rm -rf "$work/cache"
    run "$set: cold, 1 shard" 1 --cache "$work/cache"
    run "$set: warm, 1 shard" 1 --cache "$work/cache"
    for n in 2 4; do
        rm -rf "$work/cache"
        run "$set: cold, $n shards" "$n" --cache "$work/cache"
        run "$set: warm, $n shards" "$n" --cache "$work/cache"
    done
    du -sk "$work/cache" | awk -v s="$set" '{print "cache size (" s "): " $1 " KiB"}' >&2
    rm -rf "$work/cache"
done
