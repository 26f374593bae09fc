#!/usr/bin/env bash
# Scale of the watch daemon on ONE large repo (issue 17, item 4): N files
# land in one repo (blob renamed into blobs/, then the snapshot symlink),
# the daemon processes them; then a restart sweeps the same cache again.
# Reports files/s for: live landing, a cold `--once` sweep (empty state),
# and a warm restart `--once` (everything cached). Linear cost means the
# files/s figures stay flat as N grows.
#
# Usage: bench/watch_scale.sh [BINARY] [N...]   (default: target/release/modelgate 10000)
# Not run in CI: it takes minutes.
set -euo pipefail
BIN=${1:-target/release/modelgate}
shift || true
SIZES=("${@:-10000}")
BIN=$(realpath "$BIN")
for N in "${SIZES[@]}"; do
python3 - "$BIN" "$N" <<'PY'
import hashlib, os, shutil, sqlite3, subprocess, sys, tempfile, time
B, N = sys.argv[1], int(sys.argv[2])
d = tempfile.mkdtemp(prefix="mg-scale-")
hub = os.path.join(d, "hub"); st = os.path.join(d, "state")
os.makedirs(hub)
commit = "0123456789abcdef0123456789abcdef01234567"
repo = os.path.join(hub, "models--scale--one")
bl = os.path.join(repo, "blobs"); snap = os.path.join(repo, "snapshots", commit)
os.makedirs(bl); os.makedirs(snap); os.makedirs(os.path.join(repo, "refs"))
open(os.path.join(repo, "refs", "main"), "w").write(commit)
def env(state):
    return dict(os.environ, HF_HUB_CACHE=hub, MODELGATE_STATE_DIR=state, MODELGATE_LOG="warn", HOME=d)
def seen(state):
    try:
        return sqlite3.connect(os.path.join(state, "state.db")).execute("select count(*) from file_seen").fetchone()[0]
    except sqlite3.Error:
        return 0
log = open(os.path.join(d, "log"), "w")
p = subprocess.Popen([B, "watch", "--no-default-cache", "--cache", hub], env=env(st), stderr=log)
time.sleep(1.5)
t0 = time.time()
for i in range(N):
    data = b'{"i": %d}\n' % i; etag = hashlib.sha256(data).hexdigest()
    tmp = os.path.join(bl, etag + ".0000abcd.incomplete")
    with open(tmp, "wb") as f: f.write(data)
    os.rename(tmp, os.path.join(bl, etag))
    os.symlink("../../blobs/" + etag, os.path.join(snap, "f%05d.json" % i))
t1 = time.time()
timeout = float(os.environ.get("SCALE_TIMEOUT", "900"))
while seen(st) < N and time.time() - t0 < timeout:
    time.sleep(0.2)
t2 = time.time(); n = seen(st)
p.terminate(); p.wait()
print(f"N={N} landing: wrote in {t1-t0:.1f}s, {n} processed after {t2-t0:.1f}s -> {n/(t2-t0):.0f} files/s" + ("" if n >= N else " (TIMED OUT)"))
def once(state, what):
    t = time.time()
    r = subprocess.run([B, "watch", "--once", "--no-default-cache", "--cache", hub], env=env(state), stderr=subprocess.PIPE, timeout=timeout)
    dt = time.time() - t
    print(f"N={N} {what}: {dt:.1f}s -> {N/dt:.0f} files/s (exit {r.returncode})")
once(os.path.join(d, "state-cold"), "cold sweep (--once, empty state)")
once(st, "restart (--once, warm state)")
shutil.rmtree(d, ignore_errors=True)
PY
done
