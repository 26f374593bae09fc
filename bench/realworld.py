#!/usr/bin/env python3
"""Helper of bench/realworld.sh: picks the model files out of unpacked PyPI
packages and turns the scanners' reports into a per-package table.

    python3 bench/realworld.py unpack ARCHIVE DEST
    python3 bench/realworld.py select SRC_DIR SEL_DIR
    python3 bench/realworld.py report RESULTS_DIR SEL_ROOT PACKAGE...

Standard library only. Nothing here loads a model: files are only read as
bytes (a few magic bytes, or the first bytes of a decompressed stream).

A file is model-like when its extension is a model extension, when its
first bytes are a model format's magic (whatever its name), when it is a
compressed stream whose name or decompressed head is one of those, when it is
an extensionless file inside a test-data or model directory, or when it sits
in a SavedModel or spaCy pipeline directory (JSON included there: spaCy's
configs are part of what the loader reads). Selected files are hard-linked into SEL_DIR with
their relative paths, so every tool scans exactly the same tree.

Flag counting follows bench/summarize.py: modelgate verdict suspicious or
malicious; picklescan "dangerous|suspicious import" lines; modelscan issues;
modelaudit issues of severity warning or critical; fickling exit status 1.
"""
import bz2
import gzip
import json
import lzma
import os
import re
import sys
import tarfile
import zipfile
import zlib

MODEL_EXTS = {
    "pkl", "pickle", "p", "joblib", "npy", "npz", "pt", "pth", "bin", "ckpt", "jit",
    "ptl", "onnx", "tflite", "lite", "pb", "h5", "hdf5", "hdf", "keras", "gguf", "ggml",
    "safetensors", "task", "model", "msgpack",
}
COMPRESSED_EXTS = {"gz", "gzip", "bz2", "pbz", "xz", "lzma", "z", "zlib"}
# Extensions that are never model files, even in a test-data directory.
CODE_EXTS = {
    "py", "pyi", "pyc", "pyx", "pxd", "so", "c", "h", "cpp", "hpp", "txt", "md", "rst",
    "json", "yaml", "yml", "toml", "cfg", "ini", "csv", "tsv", "html", "js", "css", "xml",
    "pem", "typed", "dist-info", "record", "sh", "bat", "ps1", "license", "in",
}
DATA_DIR = re.compile(r"(^|/)(test_?data|tests?/data|data|assets|models?|weights|resources|trained_models)(/|$)", re.I)
PICKLE_FAMILY_EXTS = {"pkl", "pickle", "p", "joblib", "pt", "pth", "bin", "ckpt", "jit", "npy"}


def sniff(head):
    """The format a file's first bytes announce, or None."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"GGUF") or head[:4] in (b"ggjt", b"ggml", b"ggmf", b"tjgg", b"lmgg"):
        return "gguf"
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(b"ZF0x"):
        return "joblib-zf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return None


def decompressed_head(path):
    """The first bytes of a compressed file's content under whichever of
    gzip, bzip2, xz/lzma or zlib decodes it (names lie: joblib's `.gz` files
    are raw zlib), or b''."""
    for opener in (gzip.open, bz2.open, lzma.open):
        try:
            with opener(path) as f:
                return f.read(16)
        except (OSError, EOFError, lzma.LZMAError, ValueError):
            pass
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 16)
        return zlib.decompressobj().decompress(raw, 16)
    except (OSError, zlib.error):
        return b""


def ext_of(name):
    base = os.path.basename(name)
    if "." not in base.lstrip("."):
        return ""
    return base.rsplit(".", 1)[1].lower()


def is_model_like(path, rel, in_model_dir):
    ext = ext_of(rel)
    if in_model_dir:
        return ext not in CODE_EXTS or ext == "json"
    if ext in MODEL_EXTS:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    kind = sniff(head)
    if ext in COMPRESSED_EXTS:
        inner = ext_of(rel[: -(len(ext) + 1)])
        if kind is not None:
            return True
        return inner in MODEL_EXTS or sniff(decompressed_head(path)) not in (None, "zip")
    if ext in CODE_EXTS:
        return False
    if kind is not None and kind != "zip":
        return True
    if kind == "zip":
        # A zip is a model when it holds a pickle (torch) or a model member.
        try:
            with zipfile.ZipFile(path) as z:
                return any(ext_of(n) in MODEL_EXTS or n.endswith("data.pkl") for n in z.namelist()[:1000])
        except (zipfile.BadZipFile, OSError, ValueError):
            return False
    return ext == "" and DATA_DIR.search(os.path.dirname(rel)) is not None


def is_pickle_family(path, rel):
    """Files fickling is run on: pickles, torch checkpoints, joblib dumps."""
    ext = ext_of(rel)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    kind = sniff(head)
    if kind == "pickle":
        return True
    if kind == "zip" and ext in PICKLE_FAMILY_EXTS:
        return True
    return ext in PICKLE_FAMILY_EXTS and kind is None


def cmd_unpack(archive, dest):
    os.makedirs(dest, exist_ok=True)
    if archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                target = os.path.realpath(os.path.join(dest, info.filename))
                if not target.startswith(os.path.realpath(dest) + os.sep):
                    continue
                z.extract(info, dest)
    else:
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")


def cmd_select(src, sel):
    os.makedirs(sel, exist_ok=True)
    # Model directories whose every file the loader reads: SavedModels, and
    # spaCy pipelines (meta.json next to vocab/, extensionless msgpack members).
    model_dirs = set()
    for root, dirs, files in os.walk(src):
        if "saved_model.pb" in files or "saved_model.pbtxt" in files:
            model_dirs.add(root)
        if "meta.json" in files and "vocab" in dirs:
            model_dirs.add(root)
    n = 0
    pickles = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        in_model_dir = any(root == d or root.startswith(d + os.sep) for d in model_dirs)
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            rel = os.path.relpath(path, src)
            if ".dist-info/" in rel or ".egg-info/" in rel:
                continue
            if name.startswith(".") or not is_model_like(path, rel, in_model_dir):
                continue
            out = os.path.join(sel, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            if not os.path.exists(out):
                os.link(path, out)
            n += 1
            if is_pickle_family(path, rel):
                pickles.append(out)
    with open(sel.rstrip("/") + ".pickles", "w") as f:
        f.write("".join(p + "\n" for p in pickles))
    print(n)


def under(loc, sel):
    """The selected file a tool's location names (absolute or relative,
    maybe followed by a member), or None."""
    loc = re.sub(r" \(pos \d+\)$", "", loc or "").split(" -> ", 1)[0]
    if not loc.startswith("/"):
        loc = os.path.join(sel, loc)
    while loc and loc != "/" and not os.path.isfile(loc):
        cut = max(loc.rfind(":"), loc.rfind("/"), loc.rfind("#"), loc.rfind("!"))
        if cut <= 0:
            return None
        loc = loc[:cut]
    return loc if loc.startswith(sel + "/") else None


def modelgate_result(res, pkg, sel):
    """(files, flagged {path: [(rule, verdict, message)]}, errors) or None."""
    try:
        doc = json.load(open(os.path.join(res, f"{pkg}.modelgate.json")))
    except (OSError, ValueError):
        return None
    flagged = {}
    for f in doc.get("files", []):
        if f.get("verdict") in ("suspicious", "malicious"):
            flagged[f["path"]] = [
                (x.get("rule"), x.get("verdict"), x.get("message", "")) for x in f.get("findings", [])
                if x.get("verdict") in ("suspicious", "malicious")
            ] or [("?", f.get("verdict"), "")]
    return doc.get("summary", {}).get("files", len(doc.get("files", []))), flagged, len(doc.get("errors", []))


def other_flags(res, pkg, tool, sel):
    """Set of flagged selected files, or a string saying why there is none
    ("timeout": the time box ended the run, "n.a.": not run or no report)."""
    base = os.path.join(res, f"{pkg}.{tool}")
    try:
        if open(base + ".rc").read().strip() == "124":
            return "timeout"
    except OSError:
        return "n.a."
    flagged = set()
    try:
        if tool == "picklescan":
            for line in open(base + ".out", errors="replace"):
                m = re.match(r"^(.*?): (dangerous|suspicious) import ", line)
                if m:
                    flagged.add(under(m.group(1), sel))
        elif tool == "modelscan":
            doc = json.load(open(base + ".json"))
            for issue in doc.get("issues", []):
                flagged.add(under(issue.get("source", ""), sel))
        elif tool == "modelaudit":
            doc = json.load(open(base + ".json"))
            for issue in doc.get("issues", []):
                if issue.get("severity") in ("warning", "critical"):
                    flagged.add(under(issue.get("location") or "", sel))
        elif tool == "fickling":
            for line in open(base + ".tsv"):
                path, _, rc = line.rstrip("\n").rpartition("\t")
                if rc == "1":
                    flagged.add(path)
    except (OSError, ValueError):
        return "n.a."
    flagged.discard(None)
    return flagged


def cmd_report(res, sel_root, pkgs, tools):
    rows = []
    detail = []
    tot = {"files": 0, "mg": 0}
    tool_tot = {t: 0 for t in tools}
    for pkg in pkgs:
        sel = os.path.realpath(os.path.join(sel_root, pkg))
        mg = modelgate_result(res, pkg, sel)
        if mg is None:
            rows.append(f"| {pkg} | ? | timeout/error | |" + " |" * len(tools))
            continue
        files, flagged, errs = mg
        tot["files"] += files
        tot["mg"] += len(flagged)
        rules = {}
        for path, fs in sorted(flagged.items()):
            for rule, verdict, msg in fs:
                rules[rule] = rules.get(rule, 0) + 1
                detail.append(f"{pkg}\t{rule}\t{verdict}\t{os.path.relpath(path, sel)}\t{msg}")
        cells = []
        for t in tools:
            fl = other_flags(res, pkg, t, sel)
            if isinstance(fl, str):
                cells.append(fl)
            else:
                tool_tot[t] += len(fl)
                cells.append(str(len(fl)))
        rule_txt = ", ".join(f"{r}×{c}" for r, c in sorted(rules.items()))
        rows.append(f"| {pkg} | {files} | {len(flagged)} | {rule_txt}{' (errors: %d)' % errs if errs else ''} |"
                    + "".join(f" {c} |" for c in cells))
    head = "| package | files | modelgate flagged | modelgate rules |" + "".join(f" {t} |" for t in tools)
    sep = "|" + "---|" * (4 + len(tools))
    print(head)
    print(sep)
    for r in rows:
        print(r)
    print(f"| **total** | {tot['files']} | {tot['mg']} | |" + "".join(f" {tool_tot[t]} |" for t in tools))
    with open(os.path.join(res, "modelgate-flagged.tsv"), "w") as f:
        f.write("package\trule\tverdict\tfile\tmessage\n")
        f.write("".join(d + "\n" for d in detail))
    print(f"\nmodelgate findings per file: {os.path.join(res, 'modelgate-flagged.tsv')}")


def main(argv):
    if len(argv) == 4 and argv[1] == "unpack":
        cmd_unpack(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "select":
        cmd_select(argv[2], argv[3])
    elif len(argv) >= 5 and argv[1] == "report":
        tools = [t for t in os.environ.get("REALWORLD_TOOLS", "").split(",") if t and t != "modelgate"]
        cmd_report(argv[2], argv[3], argv[4:], tools)
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
