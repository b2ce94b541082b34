#!/bin/bash
# Stage 2 of the guest, PID 1 on the overlay root (hack/vm/init switched to
# it): mounts what a node has (cgroup2 only, securityfs, devpts, the ext4
# scratch disk for everything containerd and the tests write), runs the
# suite the host wrote into the shared directory and powers off. Results go
# to /vm (the host's run directory over 9p): logs/, results, rc.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8

say() { echo "vm: $*"; }
die() {
	say "FATAL: $*"
	[ -d /vm ] && echo 1 >/vm/rc
	halt
}
halt() {
	[ -d /vm ] && dmesg >/vm/dmesg.log 2>&1
	sync
	umount /vm 2>/dev/null
	/bin/busybox poweroff -f
	sleep 10
}

# As on a systemd node: mounts propagate (CRI volumes, netns under state).
mount --make-rshared /
mkdir -p /vm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 vm /vm || die "cannot mount the run directory (9p tag vm)"
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup || die "cannot mount cgroup2"
mount -t securityfs securityfs /sys/kernel/security || die "cannot mount securityfs"
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null

# The scratch disk: containerd's overlay snapshotter cannot use an overlay
# root, and this kernel cannot idmap tmpfs.
mkdir -p /scratch
mount -t ext4 /dev/vda /scratch || die "cannot mount the scratch disk /dev/vda"
# The tests run in their package directories of the host's checkout, which
# may live under a directory the scratch disk covers (a CI clone in /tmp):
# hold it before covering, and bind it back at its path after.
repo=$(cat /vm/repo)
mkdir -p /.repo
mount --bind "$repo" /.repo || die "cannot hold the checkout $repo"
for d in tmp run var/lib/containerd var/lib/stockade var/log; do
	mkdir -p "/scratch/$d" "/$d"
	mount --bind "/scratch/$d" "/$d"
done
chmod 1777 /tmp
if [ ! -d "$repo/hack/vm" ]; then
	mkdir -p "$repo" && mount --bind /.repo "$repo" || die "cannot bind the checkout back at $repo"
fi

# Modules the kernel asks for later (bridge, veth, nf_*) come from the
# unpacked kernel package, through 9p.
kver=$(uname -r)
mkdir -p "/lib/modules/$kver"
mount --bind "$(cat /vm/kernel-dir)/lib/modules/$kver" "/lib/modules/$kver" || die "cannot bind the kernel's modules"
for m in overlay bridge veth; do modprobe "$m" || die "modprobe $m"; done

hostname stockade-vm
ip link set lo up

say "kernel $kver; LSMs $(cat /sys/kernel/security/lsm); AppArmor enabled: $(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || echo no)"
say "cgroup filesystems: $(awk '$3 ~ /^cgroup/ {print $3 " on " $2}' /proc/mounts | tr '\n' ' ')"
say "cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"

# Binaries run from the ext4 disk, not from 9p: an executable on 9p
# without a page cache is read from the host at every page fault, which
# made containerd take over 30 s to start.
cp -r /vm/bin /scratch/bin || die "copy bin/ to the scratch disk"
cp -r /vm/tests /scratch/tests || die "copy the test binaries to the scratch disk"

# The suite: one line per test binary, tab-separated:
#   name  binary  package-dir  timeout  -test.run regexp ("" for all)
mkdir -p /vm/logs
: >/vm/results
rc=0
while IFS=$'\t' read -r name bin dir timeout run; do
	[ -n "$name" ] || continue
	args=(-test.v -test.count=1 -test.timeout="$timeout")
	[ -n "$run" ] && args+=(-test.run "$run")
	say "=== $name (${run:-all tests}, timeout $timeout)"
	start=$(date +%s)
	(cd "$dir" && env $(cat /vm/env) "/scratch/tests/$(basename "$bin")" "${args[@]}") 2>&1 | tee "/vm/logs/$name.log"
	r=${PIPESTATUS[0]}
	echo "$name $r $(($(date +%s) - start))" >>/vm/results
	say "=== $name: exit $r in $(($(date +%s) - start)) s"
	[ "$r" = 0 ] || rc=1
done </vm/suite
echo "$rc" >/vm/rc
halt
