#!/bin/sh
# Install d2i-desktop for this user, from the unpacked archive:
#
#   ./install.sh [FOLDER]              copy the app to FOLDER (default ~/.local/share/d2i-desktop-app)
#                                      and add it to the application menu; over an older version, upgrade it
#   ./install.sh --uninstall [FOLDER]  remove the app and its menu entry
#
# Your models, LoRA library, settings (~/.local/share/d2i-desktop) and pictures (~/Pictures/d2i-desktop)
# live outside the app folder: installing, upgrading and uninstalling never touch them.
set -eu

APP=d2i-desktop
APP_ID=org.d2idesktop.D2IDesktop  # names the menu entry, metainfo and icon, as desktops expect
MARKER=.d2i-desktop-app  # marks a folder this script made, the only kind it replaces or removes
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
applications=$data_home/applications
icons=$data_home/icons/hicolor
metainfo=$data_home/metainfo
here=$(cd "$(dirname "$0")" && pwd)

mode=install
case "${1:-}" in
    --uninstall) mode=uninstall; shift ;;
    -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "error: unknown option $1 (see ./install.sh --help)" >&2; exit 2 ;;
esac
target=${1:-$data_home/$APP-app}
case $target in /*) ;; *) target=$(pwd)/$target ;; esac
target=${target%/}

refuse_foreign() {
    if [ -e "$target" ] && [ ! -f "$target/$MARKER" ] && [ -n "$(ls -A "$target" 2>/dev/null)" ]; then
        echo "error: $target holds files that were not installed by this script; nothing was changed." >&2
        echo "Choose an empty or new folder: ./install.sh FOLDER" >&2
        exit 2
    fi
}

refresh_menus() {
    update-desktop-database -q "$applications" 2>/dev/null || true
    gtk-update-icon-cache -q -t "$icons" 2>/dev/null || true
}

remove_menu_entry() {
    rm -f "$applications/$APP_ID.desktop" "$metainfo/$APP_ID.metainfo.xml" "$icons/scalable/apps/$APP_ID.svg" \
          "$icons"/*/apps/"$APP_ID".png
}

if [ "$mode" = uninstall ]; then
    refuse_foreign
    rm -rf "$target"
    remove_menu_entry
    refresh_menus
    echo "d2i-desktop removed from $target."
    echo "Your models, library and settings ($data_home/d2i-desktop) and your pictures are kept."
    exit 0
fi

if [ ! -x "$here/$APP" ] || [ ! -d "$here/_internal/resources" ]; then
    echo "error: run install.sh from the unpacked d2i-desktop folder (it holds the $APP program)." >&2
    exit 2
fi
resources=$here/_internal/resources

if [ "$here" != "$target" ]; then
    refuse_foreign
    parent=$(dirname "$target")
    mkdir -p "$parent"
    staging=$(mktemp -d "$parent/.$APP-app.new.XXXXXX")
    trap 'rm -rf "$staging"' EXIT
    cp -a "$here/." "$staging/"
    touch "$staging/$MARKER"
    # Swap in the new version only once it is complete: an interrupted copy leaves the old one working.
    if [ -e "$target" ]; then
        old=$(mktemp -d "$parent/.$APP-app.old.XXXXXX")
        rmdir "$old"
        mv "$target" "$old"
        mv "$staging" "$target"
        rm -rf "$old"
    else
        mv "$staging" "$target"
    fi
    trap - EXIT
    resources=$target/_internal/resources
fi

mkdir -p "$applications" "$metainfo" "$icons/scalable/apps"
exec_path=$(printf '%s' "$target/$APP" | sed 's/[\\"`$]/\\&/g')  # the desktop entry's quoting rules
while IFS= read -r line; do
    case $line in
        Exec=*) printf 'Exec="%s" %%f\n' "$exec_path" ;;
        *) printf '%s\n' "$line" ;;
    esac
done < "$resources/$APP_ID.desktop" > "$applications/$APP_ID.desktop"
cp "$resources/$APP_ID.metainfo.xml" "$metainfo/"
cp "$resources/icons/$APP.svg" "$icons/scalable/apps/$APP_ID.svg"
for png in "$resources"/icons/"$APP"-*.png; do
    size=${png##*-}
    size=${size%.png}
    mkdir -p "$icons/${size}x${size}/apps"
    cp "$png" "$icons/${size}x${size}/apps/$APP_ID.png"
done
refresh_menus
echo "d2i-desktop installed in $target."
echo "Start it from the application menu, or with: \"$target/$APP\" (command line: \"$target/d2i\")."
