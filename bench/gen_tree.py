"""Writes N small model-like files under DIR: pickles, JSON configs and
text, with every content repeated across ~10 "repos" (duplicate blobs)."""
import os
import sys

out, n = sys.argv[1], int(sys.argv[2])
kinds = 4
repos = max(1, n // kinds)
for r in range(repos):
    d = os.path.join(out, f"org{r % 100}", f"repo{r}")
    os.makedirs(d, exist_ok=True)
    v = r % (repos // 10 + 1)
    with open(os.path.join(d, "weights.pkl"), "wb") as f:
        f.write(b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01J" + v.to_bytes(4, "little") + b"s.")
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write('{"hidden": %d}\n' % v)
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("model card %d\n" % v)
    with open(os.path.join(d, "tokenizer.pkl"), "wb") as f:
        f.write(b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03." if v == 0 else b"\x80\x02K\x01.")
