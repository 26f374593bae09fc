#!/usr/bin/env bash
# Runs deploy/ray/driver.py on a real local Ray cluster (a head and two
# worker nodes on 127.0.0.1) over a generated tree with duplicate blobs,
# cold then warm, prints the driver's numbers, and stops the cluster.
# Installs ray from PyPI into target/ray-venv once.
#   bench/ray.sh [BINARY] [FILES]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "${1:-$root/target/release/modelgate}")"
files="${2:-20000}"
venv="$root/target/ray-venv"
if ! "$venv/bin/python" -c 'import ray' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'ray==2.*'
fi
work="$(mktemp -d)"
export RAY_ADDRESS=127.0.0.1:6390
stop() { "$venv/bin/ray" stop --force >/dev/null 2>&1 || true; rm -rf "$work"; }
trap stop EXIT
"$venv/bin/python" "$root/bench/gen_tree.py" "$work/t" "$files"
# Absolute paths: Ray workers do not run in this directory.
"$bin" manifest "$work/t" > "$work/m.jsonl"
"$venv/bin/ray" start --head --node-ip-address=127.0.0.1 --port=6390 --num-cpus=1 \
    --include-dashboard=false --disable-usage-stats >/dev/null
for w in 1 2; do
    "$venv/bin/ray" start --address=127.0.0.1:6390 --node-ip-address=127.0.0.1 --num-cpus=1 \
        --disable-usage-stats >/dev/null
done
cd "$work"
for run in cold warm; do
    printf '%s: ' "$run"
    "$venv/bin/python" "$root/deploy/ray/driver.py" --manifest m.jsonl --shards 3 \
        --cache cache --out "results-$run" --binary "$bin" --address 127.0.0.1:6390 || test $? -eq 1
done
