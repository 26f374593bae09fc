#!/usr/bin/env bash
# System tools the test suite drives for real: git-lfs (tests/git_hooks.rs
# commits LFS pointers and lets git-lfs smudge them). Debian/Ubuntu only;
# elsewhere, or without root, it prints what is missing and the tests that
# need it report themselves skipped.
set -euo pipefail
# cargo-deny (supply-chain check in .ci/run) only on request: building it
# takes ~25 minutes on 2 cores, most of the CI budget.
if [ "${MODELGATE_CI_TOOLS:-}" = 1 ] && ! command -v cargo-deny >/dev/null 2>&1; then
    cargo install --locked cargo-deny
fi
missing=()
command -v git-lfs >/dev/null 2>&1 || missing+=(git-lfs)
[ ${#missing[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "deps.sh: not installed (needs apt-get as root): ${missing[*]}" >&2
fi
