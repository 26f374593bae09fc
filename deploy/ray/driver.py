"""Scan a manifest on a Ray cluster: one task per shard, then merge.

Each task runs the modelgate binary on its worker with `--shard I/N`; all
workers share one verdict cache directory (a shared filesystem in a real
cluster). The driver only splits and merges: it never reads model files.

    python driver.py --manifest m.jsonl --shards 4 --cache /shared/cache \
        --out /shared/results [--binary modelgate] [--address auto]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import ray


@ray.remote(num_cpus=1)
def scan_shard(binary, manifest, index, count, cache, out_dir, backend):
    results = os.path.join(out_dir, f"shard-{index}.jsonl")
    started = time.monotonic()
    proc = subprocess.run(
        [binary, "scan", "--manifest", manifest, "--results", results,
         "--shard", f"{index}/{count}", "--cache", cache,
         "--cache-backend", backend, "--quiet"],
        capture_output=True, text=True,
    )
    # 0 clean, 1 findings: both are results. 2 and 3 are failures.
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"shard {index}: exit {proc.returncode}: {proc.stderr}")
    return results, time.monotonic() - started


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--cache-backend", default="dir", choices=["dir", "sqlite"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--binary", default="modelgate")
    ap.add_argument("--address", default="auto")
    args = ap.parse_args()

    ray.init(address=args.address)
    os.makedirs(args.out, exist_ok=True)
    started = time.monotonic()
    files, times = zip(*ray.get([
        scan_shard.remote(os.path.abspath(args.binary), os.path.abspath(args.manifest),
                          i, args.shards, os.path.abspath(args.cache),
                          os.path.abspath(args.out), args.cache_backend)
        for i in range(args.shards)
    ]))
    wall = time.monotonic() - started
    merged = subprocess.run([args.binary, "merge", "--format", "json", *files],
                            capture_output=True, text=True)
    if merged.returncode not in (0, 1):
        sys.exit(f"merge failed: {merged.stderr}")
    doc = json.loads(merged.stdout)
    lines = [json.loads(l) for f in files for l in open(f) if l.strip()]
    print(json.dumps({
        "files": len(doc["files"]),
        "cached": sum(1 for l in lines if l["cached"]),
        "shards": args.shards,
        "wall_seconds": round(wall, 3),
        "slowest_shard_seconds": round(max(times), 3),
        "exit": merged.returncode,
    }))
    sys.exit(merged.returncode)


if __name__ == "__main__":
    main()
