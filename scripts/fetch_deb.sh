#!/usr/bin/env bash
# Fetch Debian packages and unpack them into a directory, changing nothing on the system: a
# temporary sources list, apt state and cache (removed at the end), `apt-get download` and
# `dpkg-deb -x`. The packages' libraries must already be on the machine (the Valkey ones are
# those of Debian's redis-server, which `make install` provides).
# Usage: scripts/fetch_deb.sh SUITE DEST PACKAGE...   e.g. bookworm-backports .venv/valkey8 valkey-server valkey-tools
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 SUITE DEST PACKAGE..." >&2; exit 2; }
suite=$1 dest=$2
shift 2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/state/lists/partial" "$tmp/cache/archives/partial" "$tmp/parts" "$tmp/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${DEBIAN_MIRROR:-http://deb.debian.org/debian} $suite main" \
  >"$tmp/sources.list"
opts=(
  -o "Dir::State=$tmp/state" -o "Dir::State::status=/dev/null" -o "Dir::Cache=$tmp/cache"
  -o "Dir::Etc::SourceList=$tmp/sources.list" -o "Dir::Etc::SourceParts=$tmp/parts"
  -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)"
)
apt-get "${opts[@]}" -qq update
(cd "$tmp/debs" && apt-get "${opts[@]}" -qq download "$@")
rm -rf "$dest.partial" && mkdir -p "$dest.partial"
for deb in "$tmp"/debs/*.deb; do dpkg-deb -x "$deb" "$dest.partial"; done
rm -rf "$dest" && mv "$dest.partial" "$dest"
