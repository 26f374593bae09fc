#!/usr/bin/env python3
"""Turns the raw results of bench/compare.sh into a Markdown report.

    python3 bench/summarize.py RESULTS_DIR CORPUS_DIR TARGET...

Reads hyperfine JSON (`TARGET.TOOL.json`), GNU time logs (`TARGET.TOOL.time`),
timeouts (`TARGET.TOOL.rc` = 124) and the detection outputs (`detect.*`).
Standard library only. It only reads the tools' reports: nothing in the
corpus is ever loaded.

A corpus entry counts as flagged by a tool when the tool's own verdict names
it (or a member inside it):
  modelgate   verdict suspicious or malicious (its default failure threshold)
  picklescan  a "dangerous import" or "suspicious import" line for the file
  modelscan   any issue whose source is the file or a member of it
  modelaudit  any issue of severity warning or critical located in the file
  fickling    exit status 1 from --check-safety (a Python traceback is an error)
Tool errors (unparseable input, crashes) are counted separately, not as flags.
"""
import json
import os
import re
import statistics
import sys

TOOLS = ["modelgate", "picklescan", "modelscan", "fickling", "modelaudit"]


def load_manifest(corpus):
    entries = []
    with open(os.path.join(corpus, "manifest.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                entries.append(json.loads(line))
    return entries


def entry_of(location, corpus, paths):
    """The manifest path that `location` (absolute or corpus-relative, maybe
    followed by a member or position) falls in, or None."""
    loc = location
    if loc.startswith(corpus + "/"):
        loc = loc[len(corpus) + 1:]
    best = None
    for p in paths:
        p = p.rstrip("/")  # directory entries (SavedModels) end in a slash
        if loc == p or (loc.startswith(p) and loc[len(p)] in ":/ #!"):
            if best is None or len(p) > len(best):
                best = p
    return best


def flagged_modelgate(results, corpus, paths):
    flagged, errors = set(), 0
    try:
        doc = json.load(open(os.path.join(results, "detect.modelgate.json")))
    except (OSError, ValueError):
        return None, 0
    for f in doc.get("files", []):
        if f.get("verdict") in ("suspicious", "malicious"):
            e = entry_of(f["path"], corpus, paths)
            if e:
                flagged.add(e)
    errors = len(doc.get("errors", []))
    return flagged, errors


def flagged_picklescan(results, corpus, paths):
    flagged, errors = set(), 0
    try:
        text = open(os.path.join(results, "detect.picklescan.txt"), errors="replace").read()
    except OSError:
        return None, 0
    for line in text.splitlines():
        m = re.match(r"^(.*?): (dangerous|suspicious) import ", line)
        if m:
            e = entry_of(m.group(1), corpus, paths)
            if e:
                flagged.add(e)
        elif line.startswith("ERROR:") or "Traceback" in line:
            errors += 1
    return flagged, errors


def flagged_modelscan(results, corpus, paths):
    flagged = set()
    try:
        doc = json.load(open(os.path.join(results, "detect.modelscan.json")))
    except (OSError, ValueError):
        return None, 0
    for issue in doc.get("issues", []):
        e = entry_of(issue.get("source", ""), corpus, paths)
        if e:
            flagged.add(e)
    return flagged, len(doc.get("errors", []))


def flagged_modelaudit(results, corpus, paths):
    flagged = set()
    try:
        doc = json.load(open(os.path.join(results, "detect.modelaudit.json")))
    except (OSError, ValueError):
        return None, 0
    for issue in doc.get("issues", []):
        if issue.get("severity") not in ("warning", "critical"):
            continue
        loc = issue.get("location") or ""
        loc = re.sub(r" \(pos \d+\)$", "", loc)
        e = entry_of(loc, corpus, paths)
        if e:
            flagged.add(e)
    errors = sum(1 for c in doc.get("checks", []) if c.get("status") == "error") if isinstance(doc.get("checks"), list) else 0
    return flagged, errors


def flagged_fickling(results, corpus, paths):
    flagged, errors = set(), 0
    try:
        lines = open(os.path.join(results, "detect.fickling.tsv")).read().splitlines()
    except OSError:
        return None, 0
    for line in lines:
        path, _, rc = line.rpartition("\t")
        if rc == "error":
            errors += 1
        elif rc == "1":
            e = entry_of(path, corpus, paths)
            if e:
                flagged.add(e)
    return flagged, errors


def timing(results, target, tool):
    """(median seconds, peak RSS KiB, timed_out)."""
    base = os.path.join(results, f"{target}.{tool}")
    rss = None
    try:
        for line in open(base + ".time"):
            if "Maximum resident set size" in line:
                rss = int(line.rsplit(":", 1)[1])
    except OSError:
        pass
    try:
        rc = open(base + ".rc").read().strip()
    except OSError:
        rc = ""
    if rc == "124":
        return None, rss, True
    try:
        doc = json.load(open(base + ".json"))
        times = doc["results"][0]["times"]
        return statistics.median(times), rss, False
    except (OSError, ValueError, KeyError, IndexError):
        return None, rss, False


def fmt_time(t):
    if t is None:
        return "–"
    if t < 1:
        return f"{t * 1000:.0f} ms"
    return f"{t:.2f} s"


def fmt_rss(kib):
    if kib is None:
        return "–"
    return f"{kib / 1024:.0f} MB"


def main():
    results, corpus = sys.argv[1], os.path.realpath(sys.argv[2])
    targets = sys.argv[3:]
    machine = open(os.path.join(results, "machine.txt")).read().strip()
    timeout = re.search(r"timeout (\d+) s", machine)
    timeout = timeout.group(1) if timeout else "?"

    print("```")
    print(machine)
    print("```")
    print()
    print("### Wall time (median of the runs) and peak RSS, whole processes")
    print()
    print("| input | " + " | ".join(TOOLS) + " |")
    print("|---|" + "---|" * len(TOOLS))
    for target in targets:
        cells = []
        mg, _, _ = timing(results, target, "modelgate")
        for tool in TOOLS:
            t, rss, to = timing(results, target, tool)
            if to:
                cell = f">{timeout} s (timeout)"
            else:
                cell = fmt_time(t)
                if tool != "modelgate" and t and mg:
                    cell += f" ({t / mg:.0f}×)"
            cell += f"<br>{fmt_rss(rss)}"
            cells.append(cell)
        print(f"| {target} | " + " | ".join(cells) + " |")
    print()
    print("(×) = the tool's time divided by modelgate's on the same input. "
          "Each cell also gives the peak RSS of one run (GNU time).")
    print()

    entries = load_manifest(corpus)
    paths = [e["path"] for e in entries]
    by_expect = {}
    for e in entries:
        by_expect.setdefault(e["expect"], set()).add(e["path"].rstrip("/"))
    mal = by_expect.get("malicious", set())
    sus = by_expect.get("suspicious", set())
    ben = by_expect.get("benign", set())
    print(f"### Detection on the labelled corpus ({len(mal)} malicious, {len(sus)} suspicious, {len(ben)} benign entries)")
    print()
    print("| tool | malicious flagged | suspicious flagged | benign flagged (false positives) | tool errors |")
    print("|---|---|---|---|---|")
    parsers = {
        "modelgate": flagged_modelgate,
        "picklescan": flagged_picklescan,
        "modelscan": flagged_modelscan,
        "fickling": flagged_fickling,
        "modelaudit": flagged_modelaudit,
    }
    for tool in TOOLS:
        flagged, errors = parsers[tool](results, corpus, paths)
        if flagged is None:
            print(f"| {tool} | – | – | – | no output |")
            continue
        print(f"| {tool} | {len(flagged & mal)}/{len(mal)} | {len(flagged & sus)}/{len(sus)} "
              f"| {len(flagged & ben)}/{len(ben)} | {errors} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
