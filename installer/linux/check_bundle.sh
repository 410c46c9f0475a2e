#!/usr/bin/env bash
# Check the built app as users get it, on Linux: both programs' --self-test with the network cut off
# and an empty home folder; then the archive unpacked, installed with install.sh, run read-only by an
# unprivileged user from the folder it was installed to, and uninstalled.
#
#   installer/linux/check_bundle.sh [dist]      (after python installer/build.py)
#
# The network is cut with `unshare -rn` (a new network namespace holding only a loopback that is down).
# The read-only run uses `setpriv` to become the user nobody, who cannot write to the installed files.
set -euo pipefail
dist=$(cd "${1:-dist}" && pwd)
bundle=$dist/d2i-desktop
archive=$(ls "$dist"/d2i-desktop-*-linux-*.tar.gz | head -n 1)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/d2i-bundle-check.XXXXXX")
chmod 755 "$scratch"  # the unprivileged user must reach the installed app
trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT

offline() {
    unshare -rn "$@"
}

fresh_home() {
    local home=$scratch/$1
    mkdir -p "$home"
    printf '%s' "$home"
}

echo "== self-test of dist/d2i-desktop/d2i-desktop (no network, empty home)"
HOME=$(fresh_home home-window) offline env -u D2I_DATA_DIR -u XDG_DATA_HOME "$bundle/d2i-desktop" --self-test
echo "== self-test of dist/d2i-desktop/d2i (no network, empty home)"
HOME=$(fresh_home home-cli) offline env -u D2I_DATA_DIR -u XDG_DATA_HOME "$bundle/d2i" --self-test

echo "== $(basename "$archive"): unpack, install.sh, self-test read-only as an unprivileged user, uninstall"
mkdir -p "$scratch/unpacked"
tar -xzf "$archive" -C "$scratch/unpacked"
home=$(fresh_home home-installed)
HOME=$home env -u XDG_DATA_HOME "$scratch/unpacked/d2i-desktop/install.sh" "$scratch/apps/d2i-desktop"
rm -rf "$scratch/unpacked"
chmod -R a-w "$scratch/apps/d2i-desktop"
chown -R nobody "$home"
HOME=$home setpriv --reuid=nobody --regid=nogroup --clear-groups \
    unshare -rn env -u D2I_DATA_DIR -u XDG_DATA_HOME "$scratch/apps/d2i-desktop/d2i" --self-test
if [ -n "$(find "$scratch/apps/d2i-desktop" -newer "$scratch/apps/d2i-desktop/.d2i-desktop-app" -print -quit)" ]; then
    echo "error: the app wrote into its own folder" >&2
    exit 1
fi
chmod -R u+w "$scratch/apps/d2i-desktop"
HOME=$home env -u XDG_DATA_HOME "$scratch/apps/d2i-desktop/install.sh" --uninstall "$scratch/apps/d2i-desktop"
[ ! -e "$scratch/apps/d2i-desktop" ] && [ -f "$home/.local/share/d2i-desktop/d2i-desktop.log" ]
echo "bundle checks passed"
