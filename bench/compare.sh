#!/usr/bin/env bash
# Times modelgate against picklescan, modelscan, fickling and modelaudit as
# whole processes on large benign inputs and on the labelled corpus, and
# counts each tool's detections on the corpus.
#
#   bench/compare.sh [--runs N] [--timeout SECONDS] [--size-mb MB] [--pickle-mb MB]
#                    [--corpus DIR] [--work DIR] [--latest] [--only TOOL,...]
#
# On a fresh Debian machine it installs what it needs: hyperfine and GNU time
# (apt-get), a virtual environment with the four tools (pinned versions, or
# the newest with --latest), and a release build of modelgate. Inputs are
# generated once into the work directory (about 2.5 GB). Prints a Markdown
# report on stdout and keeps raw results (hyperfine JSON, time -v logs, tool
# outputs) in WORK/results.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=3
TIMEOUT=300
SIZE_MB=1024
PICKLE_MB=200
CORPUS=${MODELGATE_CORPUS:-$ROOT/../shared/corpus}
WORK=$ROOT/bench/.work
LATEST=0
ONLY=
while [ $# -gt 0 ]; do
    case $1 in
        --runs) RUNS=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --size-mb) SIZE_MB=$2; shift 2 ;;
        --pickle-mb) PICKLE_MB=$2; shift 2 ;;
        --corpus) CORPUS=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --latest) LATEST=1; shift ;;
        --only) ONLY=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
CORPUS=$(cd "$CORPUS" && pwd)
VENV=$ROOT/bench/.venv
INPUTS=$WORK/inputs
RESULTS=$WORK/results
mkdir -p "$INPUTS" "$RESULTS"
log() { echo "compare: $*" >&2; }

# --- tools -------------------------------------------------------------------
# Versions measured in bench/RESULTS.md. modelscan's h5py extra lets it read
# Keras .h5 files; its tensorflow extra (for SavedModel and .keras Lambda
# checks) is a 600 MB install and is left out.
PINNED=("picklescan[7z]==1.0.5" "modelscan[h5py]==0.8.8" fickling==0.1.12 modelaudit==0.2.54)
UNPINNED=("picklescan[7z]" "modelscan[h5py]" fickling modelaudit)

missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} with apt-get"
    SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip >&2
fi
if [ $LATEST -eq 1 ]; then
    "$VENV/bin/pip" install -q --upgrade "${UNPINNED[@]}" >&2
else
    "$VENV/bin/pip" install -q "${PINNED[@]}" >&2
fi
# modelaudit sends usage telemetry unless told not to; no network is needed.
export PROMPTFOO_DISABLE_TELEMETRY=1 NO_ANALYTICS=1
export PATH=$VENV/bin:$PATH

log "building modelgate (release)"
(cd "$ROOT" && cargo build --release --quiet)
MODELGATE=${CARGO_TARGET_DIR:-$ROOT/target}/release/modelgate

if [ ! -f "$INPUTS/.done-$SIZE_MB-$PICKLE_MB" ]; then
    log "generating inputs in $INPUTS"
    rm -rf "$INPUTS" && mkdir -p "$INPUTS"
    python3 "$ROOT/bench/gen_inputs.py" "$INPUTS" --size-mb "$SIZE_MB" --pickle-mb "$PICKLE_MB" >&2
    touch "$INPUTS/.done-$SIZE_MB-$PICKLE_MB"
fi

# --- machine -----------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB RAM"
    echo "kernel: $(uname -r)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "modelgate: $($MODELGATE --version | awk '{print $2}') ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown))"
    for t in picklescan modelscan fickling modelaudit; do
        echo "$t: $("$VENV/bin/pip" show "$t" 2>/dev/null | awk '/^Version:/{print $2}')"
    done
    echo "python: $("$VENV/bin/python" --version | awk '{print $2}')"
    echo "hyperfine: $(hyperfine --version | awk '{print $2}')"
    echo "runs: $RUNS per measurement, timeout $TIMEOUT s per run"
} > "$RESULTS/machine.$$.txt"
if [ -n "$ONLY" ] && [ -f "$RESULTS/machine.txt" ]; then
    { echo "re-measured $ONLY:"; sed 's/^/  /' "$RESULTS/machine.$$.txt"; } >> "$RESULTS/machine.txt"
    rm "$RESULTS/machine.$$.txt"
else
    mv "$RESULTS/machine.$$.txt" "$RESULTS/machine.txt"
fi
cat "$RESULTS/machine.txt" >&2

# --- timing ------------------------------------------------------------------
# Each command scans one path and writes its report to /dev/null. Tools exit
# non-zero when they find something, so exit codes are ignored for timing.
# fickling reads one pickle per process; on a directory it is run once per
# file, as a user would have to.
cmd() { # tool path
    local tool=$1 p=$2
    case $tool in
        modelgate) echo "$MODELGATE scan --format json '$p'" ;;
        picklescan) echo "picklescan -p '$p'" ;;
        modelscan) echo "modelscan -p '$p'" ;;
        modelaudit) echo "modelaudit scan --no-cache '$p'" ;;
        fickling)
            if [ -d "$p" ]; then
                echo "find '$p' -type f -print0 | xargs -0 -n1 fickling --check-safety"
            else
                echo "fickling --check-safety '$p'"
            fi ;;
    esac
}

TOOLS=(modelgate picklescan modelscan fickling modelaudit)
# --only re-measures some tools and keeps the other tools' earlier results.
[ -z "$ONLY" ] || IFS=, read -r -a TOOLS <<< "$ONLY"
wanted() { [[ " ${TOOLS[*]} " == *" $1 "* ]]; }
TARGETS=(large_p4.pkl large_p5.pkl many_floats.pkl big_torch.pt big.safetensors tree corpus)
path_of() { if [ "$1" = corpus ]; then echo "$CORPUS"; else echo "$INPUTS/$1"; fi; }

for target in "${TARGETS[@]}"; do
    p=$(path_of "$target")
    for tool in "${TOOLS[@]}"; do
        key=$target.$tool
        c=$(cmd "$tool" "$p")
        log "$key: $c"
        # First run: peak RSS (GNU time), also warms the page cache. A tool
        # that times out here is not timed further.
        set +e
        /usr/bin/time -v -o "$RESULTS/$key.time" timeout "$TIMEOUT" bash -c "$c" \
            > "$RESULTS/$key.out" 2> "$RESULTS/$key.err"
        rc=$?
        set -e
        echo "$rc" > "$RESULTS/$key.rc"
        if [ "$rc" -eq 124 ]; then
            log "$key: timed out after $TIMEOUT s"
            rm -f "$RESULTS/$key.json"
            continue
        fi
        hyperfine --runs "$RUNS" -i --style none \
            --export-json "$RESULTS/$key.json" "timeout $TIMEOUT bash -c \"$c\" >/dev/null 2>&1" >&2
    done
done

# --- detection on the corpus ---------------------------------------------------
log "detection runs on $CORPUS"
set +e
wanted modelgate && "$MODELGATE" scan --format json "$CORPUS" > "$RESULTS/detect.modelgate.json" 2>/dev/null
wanted picklescan && picklescan -p "$CORPUS" > "$RESULTS/detect.picklescan.txt" 2>&1
wanted modelscan && modelscan -p "$CORPUS" -r json -o "$RESULTS/detect.modelscan.json" > /dev/null 2>&1
wanted modelaudit && modelaudit scan --no-cache --format json -o "$RESULTS/detect.modelaudit.json" "$CORPUS" > /dev/null 2>&1
wanted fickling && : > "$RESULTS/detect.fickling.tsv"
wanted fickling && find "$CORPUS" -type f | sort | while read -r f; do
    timeout "$TIMEOUT" fickling --check-safety "$f" > /dev/null 2> "$RESULTS/fickling.stderr"
    rc=$?
    if grep -q Traceback "$RESULTS/fickling.stderr"; then rc=error; fi
    printf '%s\t%s\n' "$f" "$rc" >> "$RESULTS/detect.fickling.tsv"
done
set -e

python3 "$ROOT/bench/summarize.py" "$RESULTS" "$CORPUS" "${TARGETS[@]}"
