#!/bin/sh
# Builds modelgate and installs it; safe to run again (idempotent).
#
#   ./install.sh              build the release binary, install to ~/.local/bin
#   PREFIX=/usr/local ./install.sh    install to $PREFIX/bin instead
#   ./install.sh --hooks      also install the git hooks into the current repository
#   ./install.sh --service    also install the cache daemon as a user service
#   ./install.sh --uninstall  remove the user service (if installed), the hooks of the
#                             current repository (if inside one) and the binary
#
# Each optional step is a function and a flag below, so more steps can be
# added the same way.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=${PREFIX:-$HOME/.local}
bindir=$prefix/bin
want_hooks=no
want_service=no
want_uninstall=no

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

for arg in "$@"; do
    case $arg in
        --hooks) want_hooks=yes ;;
        --service) want_service=yes ;;
        --uninstall) want_uninstall=yes ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
    esac
done

say() { printf 'install.sh: %s\n' "$*"; }

build() {
    command -v cargo >/dev/null 2>&1 || { echo "install.sh: cargo not found (https://rustup.rs)" >&2; exit 1; }
    say "building the release binary (cargo build --release --locked)"
    (cd "$here" && cargo build --release --locked --bin modelgate)
}

install_binary() {
    target_dir=${CARGO_TARGET_DIR:-$here/target}
    src=$target_dir/release/modelgate
    [ -x "$src" ] || { echo "install.sh: $src was not built" >&2; exit 1; }
    mkdir -p "$bindir"
    if [ -x "$bindir/modelgate" ] && cmp -s "$src" "$bindir/modelgate"; then
        say "$bindir/modelgate is already up to date"
    else
        # Copy then rename, so a running hook never sees a half-written binary.
        cp "$src" "$bindir/modelgate.tmp.$$"
        chmod 755 "$bindir/modelgate.tmp.$$"
        mv -f "$bindir/modelgate.tmp.$$" "$bindir/modelgate"
        say "installed $bindir/modelgate"
    fi
    case ":$PATH:" in
        *":$bindir:"*) ;;
        *) say "note: $bindir is not on your PATH; add it, e.g. export PATH=\"$bindir:\$PATH\"" ;;
    esac
}

install_hooks() {
    git rev-parse --git-dir >/dev/null 2>&1 || { echo "install.sh: --hooks: not inside a git repository" >&2; exit 1; }
    say "installing git hooks into $(git rev-parse --show-toplevel 2>/dev/null || git rev-parse --git-dir)"
    "$bindir/modelgate" install
}

install_service() {
    say "installing the Hugging Face cache daemon as a user service"
    "$bindir/modelgate" service install
}

uninstall_all() {
    if [ ! -x "$bindir/modelgate" ]; then
        say "nothing to remove: $bindir/modelgate is not installed"
        return
    fi
    # The service and hooks refer to the binary: remove them first, while it
    # can still restore what the hooks chained.
    "$bindir/modelgate" service uninstall --now 2>/dev/null ||
        "$bindir/modelgate" service uninstall || say "note: no service removed"
    if git rev-parse --git-dir >/dev/null 2>&1; then
        "$bindir/modelgate" uninstall || say "note: no hooks removed in this repository"
    fi
    rm -f "$bindir/modelgate"
    say "removed $bindir/modelgate (hooks installed in other repositories: run 'modelgate uninstall' there first)"
}

if [ "$want_uninstall" = yes ]; then
    uninstall_all
    exit 0
fi

build
install_binary
[ "$want_hooks" = yes ] && install_hooks
[ "$want_service" = yes ] && install_service
say "done"
