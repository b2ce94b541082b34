#!/usr/bin/env bash
# initramfs.sh KERNEL_DIR OUT_DIR: builds (or finds, keyed by its inputs) the
# guest's initramfs: busybox-static, hack/vm/init and the modules needed to
# mount the root (virtio, 9p, ext4, overlay). Prints its path.
set -euo pipefail

kdir=$1
out=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kver=$(cat "$kdir/.kver")
busybox=/bin/busybox

# Dependency order as modprobe resolves it; a module listed twice is
# loaded once.
mods=$(for m in virtio_pci virtio_blk virtio_rng 9p 9pnet_virtio ext4 overlay; do
	modprobe -d "$kdir" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++')

key=$( { sha256sum "$here/init" "$busybox" "$BASH_SOURCE"; echo "$kdir"; echo "$mods"; } | sha256sum | cut -c1-16)
img=$out/initramfs-$kver-$key.cpio.gz
if [ -f "$img" ]; then
	echo "$img"
	exit 0
fi

tmp=$(mktemp -d "$out/.initramfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$root"/{bin,dev,proc,sys,mods}
cp "$busybox" "$root/bin/busybox"
cp "$here/init" "$root/init"
chmod 755 "$root/init"
n=0
for m in $mods; do
	n=$((n + 1))
	cp "$m" "$root/mods/$(printf %02d $n)-$(basename "$m")"
done
(cd "$root" && find . -print0 | cpio --null --quiet -o -H newc | gzip -1 >"$tmp/img")
# Keep only the current image: older ones were for older inputs.
rm -f "$out"/initramfs-"$kver"-*.cpio.gz
mv "$tmp/img" "$img"
echo "$img"
