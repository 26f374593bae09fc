#!/bin/sh
# The load-time guard's overheads, in a venv with numpy/joblib/scikit-learn/
# pandas (tests/fixtures/guard-venv.sh):
#   - interpreter start-up (`python -c pass`): guard not installed,
#     installed, installed but MODELGATE_GUARD=off;
#   - pickle.loads of a 10,000-global pickle (10,000 find_class audit
#     events) with and without the guard;
#   - the first and the cached joblib.load of a small scikit-learn model
#     (the wrapper's `modelgate scan` subprocess, then the sha256 cache).
#   MG=target/release/modelgate bench/guard.sh [VENV]
set -eu
MG=$(cd "$(dirname "${MG:-target/release/modelgate}")" && pwd)/$(basename "${MG:-target/release/modelgate}")
V=$(cd "${1:-target/guard-venv}" && pwd)
PY=$V/bin/python
W=$(mktemp -d)
trap 'rm -rf "$W"; "$MG" guard uninstall --venv "$V" >/dev/null' EXIT
cd "$W"

startup() {
    "$PY" - "$@" <<'PY'
import os, statistics, subprocess, sys, time
env = dict(os.environ)
if len(sys.argv) > 1:
    env["MODELGATE_GUARD"] = sys.argv[1]
runs = []
for _ in range(40):
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    runs.append(time.perf_counter() - t)
print("    median %.2f ms, min %.2f ms (40 runs)" % (statistics.median(runs) * 1e3, min(runs) * 1e3))
PY
}

loads() {
    MODELGATE_GUARD=$1 "$PY" - <<'PY'
import pickle, timeit
# MARK, then 10,000 GLOBAL opcodes (each one find_class call and audit
# event), APPENDS into a list.
data = b"\x80\x02]q\x00(" + b"ccollections\nOrderedDict\n" * 10000 + b"e."
assert len(pickle.loads(data)) == 10000
n, t = timeit.Timer(lambda: pickle.loads(data)).autorange()
print("    %.2f ms per pickle.loads (%d runs)" % (t / n * 1e3, n))
PY
}

joblib_load() {
    MODELGATE_GUARD=$1 "$PY" - <<'PY'
import time, joblib, numpy as np
from sklearn.linear_model import LogisticRegression
joblib.dump(LogisticRegression().fit(np.eye(4), [0, 1, 0, 1]), "m.joblib")
t = time.perf_counter(); joblib.load("m.joblib"); first = time.perf_counter() - t
t = time.perf_counter(); joblib.load("m.joblib"); again = time.perf_counter() - t
print("    first joblib.load %.2f ms, again %.2f ms" % (first * 1e3, again * 1e3))
PY
}

"$MG" guard uninstall --venv "$V" >/dev/null
echo "start-up, guard not installed:"; startup
echo "10,000-global pickle.loads, guard not installed:"; loads on
"$MG" guard install --venv "$V" >/dev/null
echo "start-up, guard installed:"; startup
echo "start-up, guard installed, MODELGATE_GUARD=off:"; startup off
echo "10,000-global pickle.loads, guard on:"; loads on
echo "10,000-global pickle.loads, MODELGATE_GUARD=off:"; loads off
echo "joblib.load of a small model, guard on:"; joblib_load on
echo "joblib.load of a small model, MODELGATE_GUARD=off:"; joblib_load off
