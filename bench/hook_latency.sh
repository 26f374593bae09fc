#!/bin/sh
# Hook latency: a 1,000-file text-only commit and a commit adding a 1 GiB
# safetensors file (plain git object, then through an LFS pointer).
#   MG=target/release/modelgate bench/hook_latency.sh [WORKDIR]
set -eu
MG=$(cd "$(dirname "${MG:-target/release/modelgate}")" && pwd)/$(basename "${MG:-target/release/modelgate}")
W=${1:-$(mktemp -d)}
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
t() { /usr/bin/time -f "    %e s wall, %U s user, %M KB max RSS" "$@"; }

rm -rf "$W/text" "$W/big" && mkdir -p "$W"
git init -q "$W/text" && cd "$W/text"
for i in $(seq 1 1000); do echo "line $i of some source text" > "f$i.py"; done
git add .
echo "1,000 staged text files: modelgate hook pre-commit (5 runs)"
for _ in 1 2 3 4 5; do t "$MG" hook pre-commit; done

git init -q "$W/big" && cd "$W/big"
python3 - <<'PY'
import json, struct
n = (1 << 30) - 4096
h = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
h += b" " * (-len(h) % 8)
with open("model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    f.truncate(8 + len(h) + n)
PY
git add model.safetensors
echo "1 GiB safetensors staged as a plain git object: modelgate hook pre-commit (3 runs)"
for _ in 1 2 3; do t "$MG" hook pre-commit; done
