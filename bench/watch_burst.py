#!/usr/bin/env python3
# A burst of 10,000 finished downloads (benign JSON blobs, 100 repos): time
# until the daemon has seen all of them, peak RSS, watch count.
import hashlib, os, sqlite3, subprocess, sys, tempfile, time
B = sys.argv[1]; N = 10000
d = tempfile.mkdtemp(); hub = os.path.join(d, "hub"); os.makedirs(hub); st = os.path.join(d, "state")
env = dict(os.environ, HF_HUB_CACHE=hub, MODELGATE_STATE_DIR=st, MODELGATE_LOG="warn")
p = subprocess.Popen([B, "watch"], env=env, stderr=open(os.path.join(d, "log"), "w"))
time.sleep(1.0)
t0 = time.time()
for i in range(N):
    data = b'{"i": %d}\n' % i; etag = hashlib.sha256(data).hexdigest()
    repo = os.path.join(hub, "models--burst--r%d" % (i % 100)); bl = os.path.join(repo, "blobs")
    os.makedirs(bl, exist_ok=True)
    tmp = os.path.join(bl, etag + ".0000abcd.incomplete"); open(tmp, "wb").write(data); os.rename(tmp, os.path.join(bl, etag))
t1 = time.time()
peak = 0
while True:
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): peak = max(peak, int(l.split()[1]))
    n = sqlite3.connect(os.path.join(st, "state.db")).execute("select count(*) from file_seen").fetchone()[0]
    if n >= N or time.time() - t0 > 600: break
    time.sleep(0.5)
print(f"wrote {N} files in {t1-t0:.1f}s; all {n} processed after {time.time()-t0:.1f}s; peak RSS {peak} kB")
print("inotify watches:", sum(1 for fd in os.listdir(f"/proc/{p.pid}/fdinfo") for l in open(f"/proc/{p.pid}/fdinfo/{fd}") if l.startswith("inotify wd")))
p.terminate(); p.wait(); print("exit", p.returncode)
