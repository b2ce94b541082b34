#!/usr/bin/env bash
# kernel.sh CACHE_DIR ABI: makes sure Debian's linux-image-ABI-amd64 is
# unpacked under CACHE_DIR (never installed: nothing goes to /boot) with a
# modules.dep for it, and prints the unpacked tree's directory.
#
# The ABI is pinned in mk/vm.mk. Debian's archive keeps only the newest
# kernel of a release, so when the pinned package is gone the newest
# linux-image-6.1.0-*-amd64 apt offers is used instead, with a note.
set -euo pipefail

cache=$1
abi=$2

pkg=linux-image-$abi-amd64
if ! apt-cache show "$pkg" >/dev/null 2>&1; then
	newest=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' | sort -V | tail -1)
	if [ -z "$newest" ]; then
		echo "vm: apt offers no linux-image-6.1.0-*-amd64 (run apt-get update?)" >&2
		exit 1
	fi
	echo "vm: $pkg is no longer in apt's lists; using $newest (update VM_KERNEL_ABI in mk/vm.mk)" >&2
	pkg=$newest
	abi=${pkg#linux-image-}
	abi=${abi%-amd64}
fi
version=$(apt-cache show "$pkg" | awk '/^Version:/ {print $2; exit}')
dir=$cache/$pkg-$version
if [ -f "$dir/.done" ]; then
	echo "$dir"
	exit 0
fi

echo "vm: fetching $pkg $version from apt into $dir" >&2
tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# apt downloads as _apt where it can.
chmod 755 "$tmp"
(cd "$tmp" && apt-get download "$pkg=$version" >&2)
dpkg-deb -x "$tmp"/*.deb "$tmp/tree"
kver=$(ls "$tmp/tree/lib/modules")
depmod -b "$tmp/tree" "$kver"
echo "$kver" >"$tmp/tree/.kver"
touch "$tmp/tree/.done"
rm -rf "$dir"
mv "$tmp/tree" "$dir"
echo "$dir"
