#!/usr/bin/env bash
# run.sh: the VM tier. Boots Debian's 6.1 kernel under qemu (TCG: /dev/kvm
# here is PVM and cannot run a stock kernel) with AppArmor enforcing and
# only cgroup v2, runs the integration tests listed in hack/vm/suite inside
# it and exits with their result. Everything it makes (qemu, the run
# directory with the scratch disk, test binaries and a snapshot of bin/) is
# removed on exit, timeout and interrupt alike; the logs of the last run are
# copied to bin/vm-test/.
#
# Environment: VM_KERNEL_ABI (required; mk/vm.mk pins it), VM_CACHE
# (~/.cache/stockade/vm), VM_TIMEOUT (seconds for the guest, 840),
# VM_MEM (MiB, 4096), VM_SMP (2), VM_RUN (a regexp: only suite lines whose
# name matches), VM_KEEP=1 (keep the run directory).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VM_CACHE:-$HOME/.cache/stockade/vm}
abi=${VM_KERNEL_ABI:?VM_KERNEL_ABI is not set (mk/vm.mk pins it)}
timeout=${VM_TIMEOUT:-840}
mem=${VM_MEM:-4096}
smp=${VM_SMP:-2}
only=${VM_RUN:-}
logs=$repo/bin/vm-test

work=
qemu_pid=
tail_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill "$qemu_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	if [ -n "$tail_pid" ]; then
		kill "$tail_pid" 2>/dev/null || true
		wait "$tail_pid" 2>/dev/null || true
	fi
	if [ -n "$work" ] && [ -d "$work" ]; then
		rm -rf "$logs"
		mkdir -p "$logs"
		cp -r "$work/logs" "$work/results" "$work/dmesg.log" "$work/console.log" "$logs/" 2>/dev/null || true
		if [ "${VM_KEEP:-}" = 1 ]; then
			echo "vm-test: kept $work" >&2
		else
			rm -rf "$work"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "vm-test: interrupted" >&2; exit 130' INT TERM

mkdir -p "$cache"
kdir=$("$here/kernel.sh" "$cache" "$abi")
kver=$(cat "$kdir/.kver")
initrd=$("$here/initramfs.sh" "$kdir" "$cache")

work=$(mktemp -d /tmp/stockade-vm.XXXXXX)
mkdir -p "$work/bin" "$work/tests" "$work/logs"

# A snapshot of bin/: others may rebuild it while the guest runs.
for b in containerd containerd-shim-runc-v2 containerd-shim-stockade-v1 runc stockade ctr; do
	cp "$repo/bin/$b" "$work/bin/"
done
# The images the integration packages use (not the e2e installer image:
# importing it would cost the guest half a minute per package).
mkdir -p "$work/bin/images"
cp "$repo"/bin/images/{busybox,pause,sysbench}.tar "$work/bin/images/"

# Test binaries are built here, where Go and its caches are, and run there.
: >"$work/suite"
while read -r name pkg tmo run; do
	case "$name" in '' | '#'*) continue ;; esac
	if [ -n "$only" ] && ! [[ $name =~ $only ]]; then continue; fi
	[ "$run" = "-" ] && run=
	(cd "$repo" && go test -c -tags seccomp -o "$work/tests/$name.test" "./$pkg")
	printf '%s\t%s\t%s\t%s\t%s\n' "$name" "/vm/tests/$name.test" "$repo/$pkg" "$tmo" "$run" >>"$work/suite"
done <"$here/suite"
if ! [ -s "$work/suite" ]; then
	echo "vm-test: nothing in hack/vm/suite matches VM_RUN=$only" >&2
	exit 1
fi
printf '%s\n' STOCKADE_BIN_DIR=/scratch/bin STOCKADE_REQUIRE_APPARMOR=1 STOCKADE_REQUIRE_CGROUP2=1 >"$work/env"
echo "$kdir" >"$work/kernel-dir"
# The guest covers /tmp, /run and containerd's state with its scratch disk;
# a checkout under one of them (a CI clone in /tmp) is bound back in place.
echo "$repo" >"$work/repo"

truncate -s 16G "$work/scratch.img"
mkfs.ext4 -q -F -m 0 "$work/scratch.img"
: >"$work/console.log"

echo "vm-test: booting $kver under qemu (TCG, $smp CPUs, $mem MiB), guest timeout ${timeout}s"
start=$SECONDS
qemu-system-x86_64 -nodefaults -display none -no-reboot \
	-machine q35 -accel tcg,thread=multi -cpu max -smp "$smp" -m "$mem" \
	-kernel "$kdir/boot/vmlinuz-$kver" -initrd "$initrd" \
	-append "console=ttyS0 quiet loglevel=4 panic=-1 apparmor=1 security=apparmor cgroup_no_v1=all stockade.stage2=$here/guest.sh" \
	-serial "file:$work/console.log" \
	-fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap" \
	-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
	-fsdev "local,id=vm,path=$work,security_model=none,multidevs=remap" \
	-device virtio-9p-pci,fsdev=vm,mount_tag=vm \
	-drive "file=$work/scratch.img,format=raw,if=virtio,cache=unsafe" \
	-device virtio-rng-pci \
	</dev/null &
qemu_pid=$!
tail -n +1 -f --pid="$qemu_pid" "$work/console.log" &
tail_pid=$!

while kill -0 "$qemu_pid" 2>/dev/null; do
	if ((SECONDS - start > timeout)); then
		echo "vm-test: TIMEOUT: the guest did not finish within ${timeout}s (VM_TIMEOUT); killing qemu" >&2
		exit 124
	fi
	sleep 1
done
qrc=0
wait "$qemu_pid" || qrc=$?
qemu_pid=
wait "$tail_pid" 2>/dev/null || true
tail_pid=
elapsed=$((SECONDS - start))

echo
echo "vm-test: guest ran ${elapsed}s (boot to power-off)"
if [ -s "$work/results" ]; then
	while read -r name r secs; do
		log=$work/logs/$name.log
		printf 'vm-test: %-20s exit %s  %4ss  pass %s  fail %s  skip %s\n' "$name" "$r" "$secs" \
			"$(grep -c -- '--- PASS' "$log" || true)" "$(grep -c -- '--- FAIL' "$log" || true)" "$(grep -c -- '--- SKIP' "$log" || true)"
	done <"$work/results"
fi
if ! [ -f "$work/rc" ]; then
	echo "vm-test: FAIL: the guest stopped without a result (qemu exit $qrc); see bin/vm-test/console.log" >&2
	exit 1
fi
rc=$(cat "$work/rc")
if [ "$rc" != 0 ]; then
	echo "vm-test: FAIL (logs in bin/vm-test/)" >&2
	exit 1
fi
echo "vm-test: PASS"
