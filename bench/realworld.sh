#!/usr/bin/env bash
# Scans real published model files -- the ones PyPI packages ship as package
# data and test data -- with modelgate and, side by side, with picklescan,
# modelscan, fickling and modelaudit, and prints per package how many files
# each tool flags. Every file here is benign (published, widely installed), so
# every flag is a false alarm to explain. Never run in CI: it downloads
# about 1 GB and unpacks about 2 GB.
#
#   bench/realworld.sh [--packages FILE] [--work DIR] [--tools LIST]
#                      [--timeout SECONDS] [--only PKG,...]
#
#   --packages  pinned package list (default bench/realworld-packages.txt)
#   --work      work directory (default bench/.work/realworld)
#   --tools     comma list among modelgate,picklescan,modelscan,fickling,modelaudit
#               (default: all; modelgate alone skips the Python tool install)
#   --timeout   time box per tool per package, seconds (default 600)
#   --only      only these packages (names as in the list, without the pin;
#               a second pin of a package is named name-version)
#
# MODELGATE names the binary (default target/release/modelgate, built if
# missing). Packages are fetched with `pip download --no-deps` into
# WORK/dl, unpacked into WORK/realworld/<pkg>, and the model-like files
# (bench/realworld.py decides: by extension, by magic bytes, compressed
# pickles, extensionless test data, SavedModel directories) are hard-linked
# into WORK/selected/<pkg>, which every tool scans. Raw reports stay in
# WORK/results; the table goes to stdout, per-file modelgate findings to
# WORK/results/modelgate-flagged.tsv. Scans run under nice -n 10.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PACKAGES=$ROOT/bench/realworld-packages.txt
WORK=$ROOT/bench/.work/realworld
TOOLS=modelgate,picklescan,modelscan,fickling,modelaudit
TIMEOUT=600
ONLY=
while [ $# -gt 0 ]; do
    case $1 in
        --packages) PACKAGES=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --tools) TOOLS=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
PACKAGES=$(cd "$(dirname "$PACKAGES")" && pwd)/$(basename "$PACKAGES")
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
VENV=$WORK/venv
RESULTS=$WORK/results
log() { echo "realworld: $*" >&2; }
wanted() { [[ ",$TOOLS," == *",$1,"* ]]; }
HELPER=$ROOT/bench/realworld.py

# --- tools -------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip >&2
fi
if [ "$TOOLS" != modelgate ]; then
    # The same tool versions as bench/compare.sh, read from there so that the
    # two benchmarks always compare the same releases.
    eval "$(grep '^PINNED=' "$ROOT/bench/compare.sh")"
    "$VENV/bin/pip" install -q "${PINNED[@]}" >&2
fi
# modelaudit sends usage telemetry unless told not to; no network is needed.
export PROMPTFOO_DISABLE_TELEMETRY=1 NO_ANALYTICS=1

MODELGATE=${MODELGATE:-${CARGO_TARGET_DIR:-$ROOT/target}/release/modelgate}
if [ ! -x "$MODELGATE" ]; then
    log "building modelgate (release)"
    (cd "$ROOT" && cargo build --release --quiet)
fi
MODELGATE=$(cd "$(dirname "$MODELGATE")" && pwd)/$(basename "$MODELGATE")

# --- packages ----------------------------------------------------------------
PKGS=()
SEEN=" "
while read -r spec extra; do
    case $spec in ''|'#'*) continue ;; esac
    name=${spec%%==*}
    # A second pin of the same package is kept apart under name-version,
    # whether or not --only selects the first pin.
    if [[ "$SEEN" == *" $name "* ]]; then name=$name-${spec#*==}; fi
    SEEN="$SEEN${spec%%==*} "
    if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
    PKGS+=("$name")
    dl=$WORK/dl/$name
    if [ ! -f "$dl/.done" ]; then
        log "downloading $spec"
        rm -rf "$dl" && mkdir -p "$dl"
        # shellcheck disable=SC2086 # extra holds pip options, one per word
        "$VENV/bin/pip" download -q --no-deps --disable-pip-version-check -d "$dl" "$spec" $extra >&2
        touch "$dl/.done"
    fi
    src=$WORK/realworld/$name
    if [ ! -f "$src/.done" ]; then
        rm -rf "$src" && mkdir -p "$src"
        for a in "$dl"/*; do python3 "$HELPER" unpack "$a" "$src"; done
        touch "$src/.done"
    fi
    sel=$WORK/selected/$name
    if [ ! -f "$WORK/selected/$name.count" ]; then
        rm -rf "$sel" && mkdir -p "$WORK/selected"
        python3 "$HELPER" select "$src" "$sel" > "$WORK/selected/$name.count.tmp"
        mv "$WORK/selected/$name.count.tmp" "$WORK/selected/$name.count"
    fi
    log "$name: $(cat "$WORK/selected/$name.count") model-like files"
done < "$PACKAGES"

# --- scans -------------------------------------------------------------------
mkdir -p "$RESULTS"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "modelgate: $MODELGATE ($("$MODELGATE" --version | awk '{print $2}'), $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown))"
    for t in picklescan modelscan fickling modelaudit; do
        wanted "$t" && echo "$t: $("$VENV/bin/pip" show "$t" 2>/dev/null | awk '/^Version:/{print $2}')"
    done
    echo "packages: $(basename "$PACKAGES"), time box $TIMEOUT s per tool per package"
} > "$RESULTS/machine.txt"
cat "$RESULTS/machine.txt" >&2

# Runs one tool over one package's selected tree; the exit status (124 on
# time-out) is kept next to the output. Tools exit non-zero when they find
# something, so the status is otherwise ignored.
run() { # tool pkg
    local tool=$1 pkg=$2 sel=$WORK/selected/$2 out=$RESULTS/$2.$1 rc
    set +e
    case $tool in
        modelgate)
            nice -n 10 timeout "$TIMEOUT" "$MODELGATE" scan --format json "$sel" \
                > "$RESULTS/$pkg.modelgate.json" 2> "$out.err"; rc=$? ;;
        picklescan)
            nice -n 10 timeout "$TIMEOUT" "$VENV/bin/picklescan" -p "$sel" > "$out.out" 2> "$out.err"; rc=$? ;;
        modelscan)
            rm -f "$out.json"
            nice -n 10 timeout "$TIMEOUT" "$VENV/bin/modelscan" -p "$sel" -r json -o "$out.json" \
                > "$out.out" 2> "$out.err"; rc=$? ;;
        modelaudit)
            rm -f "$out.json"
            nice -n 10 timeout "$TIMEOUT" "$VENV/bin/modelaudit" scan --no-cache --format json \
                -o "$out.json" "$sel" > "$out.out" 2> "$out.err"; rc=$? ;;
        fickling)
            # fickling reads one pickle per process: run it on the pickle-family
            # files only, all within one time box per package.
            : > "$out.tsv"
            local deadline=$((SECONDS + TIMEOUT)) f frc
            rc=0
            while read -r f; do
                if [ $SECONDS -ge $deadline ]; then rc=124; break; fi
                nice -n 10 timeout 60 "$VENV/bin/fickling" --check-safety "$f" > /dev/null 2> "$out.err"
                frc=$?
                if grep -q Traceback "$out.err"; then frc=error; fi
                printf '%s\t%s\n' "$f" "$frc" >> "$out.tsv"
            done < "$WORK/selected/$pkg.pickles"
            ;;
    esac
    set -e
    echo "$rc" > "$out.rc"
    [ "$rc" != 124 ] || log "$pkg.$tool: timed out after $TIMEOUT s"
}

# fickling writes a report into the working directory.
cd "$RESULTS"
IFS=, read -r -a TOOL_LIST <<< "$TOOLS"
for pkg in "${PKGS[@]}"; do
    for tool in "${TOOL_LIST[@]}"; do
        log "$pkg: $tool"
        run "$tool" "$pkg"
    done
done

REALWORLD_TOOLS=$TOOLS python3 "$HELPER" report "$RESULTS" "$WORK/selected" "${PKGS[@]}"
