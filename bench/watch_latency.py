#!/usr/bin/env python3
# Latency from the rename into blobs/ to the tombstone, and idle RSS.
# Usage: python3 bench/watch_latency.py target/release/modelgate [RUNS]
import hashlib, os, statistics, subprocess, sys, tempfile, time
B = sys.argv[1]; N = int(sys.argv[2]) if len(sys.argv) > 2 else 50
d = tempfile.mkdtemp(); hub = os.path.join(d, "hub"); os.makedirs(hub)
env = dict(os.environ, HF_HUB_CACHE=hub, MODELGATE_STATE_DIR=os.path.join(d, "state"), MODELGATE_LOG="warn")
log = open(os.path.join(d, "log"), "w")
p = subprocess.Popen([B, "watch"], env=env, stderr=log)
time.sleep(1.0)
def rss(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return l.split()[1] + " kB"
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split(); return int(f[11]) + int(f[12])
print("idle RSS after start:", rss(p.pid))
lat = []
for i in range(N):
    data = b"cos\nsystem\n(S'echo pwned %d'\ntR." % i
    etag = hashlib.sha256(data).hexdigest()
    repo = os.path.join(hub, "models--bench--m%d" % (i % 5))
    os.makedirs(os.path.join(repo, "blobs"), exist_ok=True)
    tmp = os.path.join(repo, "blobs", etag + ".1a2b3c4d.incomplete"); blob = os.path.join(repo, "blobs", etag)
    open(tmp, "wb").write(data)
    t0 = time.perf_counter(); os.rename(tmp, blob)
    while True:
        with open(blob, "rb") as f:
            if f.read(1) == b"\0": break
        if time.perf_counter() - t0 > 10: raise SystemExit("timeout")
        time.sleep(0.0002)
    lat.append((time.perf_counter() - t0) * 1000)
lat.sort()
print(f"runs={N} median={statistics.median(lat):.1f}ms p90={lat[int(0.9*N)-1]:.1f}ms worst={lat[-1]:.1f}ms best={lat[0]:.1f}ms")
time.sleep(2); c0 = cpu(p.pid); time.sleep(10); c1 = cpu(p.pid)
print("idle RSS after %d quarantines:" % N, rss(p.pid), "| CPU ticks over 10 s idle:", c1 - c0)
p.terminate(); p.wait()
