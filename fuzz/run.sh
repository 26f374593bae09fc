#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), one after another
# (or JOBS at a time), seeding each from the rule fixtures and the labelled
# corpus by content. Crashes land in fuzz/artifacts/TARGET/; a summary of
# executions and crashes per target is printed at the end.
#
#   fuzz/run.sh [SECONDS] [JOBS] [TARGET...]
set -euo pipefail

FUZZ=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$FUZZ")
SECONDS_EACH=${1:-600}
JOBS=${2:-1}
shift $(( $# > 2 ? 2 : $# ))
CORPUS_SRC=${CORPUS_SRC:-$ROOT/../shared/corpus}
MAX_LEN=${MAX_LEN:-262144}

rustup toolchain list | grep -q '^nightly' || {
    echo "fuzz: the nightly toolchain is required (rustup toolchain install nightly)" >&2
    exit 2
}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

cd "$FUZZ"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi

# Which seed files suit a target, by content (never by name).
kind_of() {
    local f=$1 magic
    magic=$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')
    case $magic in
        504b0304*|504b0506*) echo zip ;;
        80*) echo pickle ;;
        934e554d5059*) echo numpy ;;
        47475546*) echo gguf ;;
        ????????54464c33*) echo tflite ;;
        08*) echo protobuf ;;
        894844460d0a1a0a*) echo hdf5 ;;
        377abcaf271c*) echo 7z ;;
        1f8b*|425a68*|fd377a585a00*|5d0000*|78*) echo compressed ;;
        *)
            if [ "$(head -c 262 "$f" | tail -c 5 | tr -d '\000')" = ustar ]; then echo tar
            elif [ "$(head -c 9 "$f" | tail -c 1 | tr -d '\000')" = "{" ]; then echo safetensors
            else echo other; fi ;;
    esac
}

seed() {
    local target=$1 dir=corpus/$1
    mkdir -p "$dir"
    [ -n "$(ls -A "$dir" 2>/dev/null)" ] && return
    local want
    case $target in
        pickle_walker|scan_pickle) want=pickle ;;
        scan_joblib) want="pickle compressed" ;;
        scan_zip|zip_views) want=zip ;;
        scan_tar|tar_typeflag) want=tar ;;
        scan_7z) want=7z ;;
        scan_compressed) want=compressed ;;
        scan_numpy) want=numpy ;;
        npy_header)
            printf '%s' "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }" > "$dir/object"
            printf '%s' "{'descr': [('a', '<i4'), ('b', [('c', '\\x4f')])], 'fortran_order': False, 'shape': (1L,)}" > "$dir/nested"
            printf '%s' "{'descr': u'<' r'f8' # c\n, 'descr': b'|O', 'fortran_order': True, 'shape': ()}" > "$dir/mixed"
            return ;;
        scan_hdf5) want=hdf5 ;;
        keras_config) want=keras ;;
        scan_safetensors) want=safetensors ;;
        scan_gguf) want=gguf ;;
        scan_tflite) want=tflite ;;
        scan_onnx|scan_savedmodel) want=protobuf ;;
        jinja_template)
            # Real published templates and the data-flow escape fixtures.
            find "$ROOT/tests/fixtures/templates/real" "$ROOT/tests/fixtures/rules" \
                -name '*.jinja' -size -64k -exec cp -t "$dir" {} +
            printf '%s' "{{ ''.__class__.__mro__[1].__subclasses__() }}" > "$dir/ssti"
            return ;;
        torchscript_code)
            # The code/*.py sources of the TorchScript fixtures.
            find "$ROOT/tests/fixtures" -name '*.pt' -type f -print0 2>/dev/null |
                while IFS= read -r -d '' f; do
                    python3 - "$f" "$dir" <<'PY' || true
import hashlib, sys, zipfile
try:
    z = zipfile.ZipFile(sys.argv[1])
except Exception:
    sys.exit(0)
for n in z.namelist():
    if n.endswith(".py") and "/code/" in n:
        b = z.read(n)
        open(f"{sys.argv[2]}/{hashlib.sha1(b).hexdigest()[:16]}", "wb").write(b)
PY
                done
            return ;;
        *) want=any ;;
    esac
    while IFS= read -r -d '' f; do
        [ "$(stat -c %s "$f")" -le "$MAX_LEN" ] || continue
        local k
        k=$(kind_of "$f")
        if [ "$want" = keras ]; then
            [ "$k" = zip ] && unzip -p "$f" config.json > "$dir/$(sha1sum < "$f" | cut -c1-16)" 2>/dev/null || true
            continue
        fi
        if [ "$want" = any ] || [[ " $want " == *" $k "* ]]; then
            cp "$f" "$dir/$(sha1sum < "$f" | cut -c1-16)"
        fi
    done < <(find "$ROOT/tests/fixtures/rules" "$CORPUS_SRC" -type f -print0 2>/dev/null)
    find "$dir" -empty -delete
    mkdir -p "$dir"
}

cargo +nightly fuzz build -O
mkdir -p logs
run_one() {
    local t=$1
    seed "$t"
    local started=$SECONDS
    set +e
    cargo +nightly fuzz run -O "$t" -- -max_total_time="$SECONDS_EACH" -max_len="$MAX_LEN" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 > "logs/$t.log" 2>&1
    local rc=$?
    set -e
    echo "$t rc=$rc seconds=$((SECONDS - started))" >> logs/summary.txt
}

: > logs/summary.txt
running=0
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

printf '%-18s %8s %12s %8s %s\n' target seconds execs exec/s crashes
for t in "${TARGETS[@]}"; do
    log=logs/$t.log
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    secs=$(grep "^$t " logs/summary.txt | grep -o 'seconds=[0-9]*' | cut -d= -f2)
    crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
    printf '%-18s %8s %12s %8s %s\n' "$t" "${secs:-?}" "${execs:-?}" "${rate:-?}" "$crashes"
done
