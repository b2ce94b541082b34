# The VM tier: integration tests that need AppArmor enforcing or a cgroup
# v2-only host, run inside Debian's 6.1 kernel under qemu (TCG) booted with
# `apparmor=1 security=apparmor cgroup_no_v1=all`:
#
#   make vm-test                 the suite in hack/vm/suite
#   make vm-test VM_RUN=apparmor only suite lines whose name matches
#   make vm-test VM_TIMEOUT=1200 a longer guest timeout (seconds)
#
# The kernel package comes from apt (apt-get download, unpacked with
# dpkg-deb into ~/.cache/stockade/vm, never installed), the initramfs is
# built here from busybox-static; the guest reads the host's root over
# virtio-9p, read-only. Logs of the last run: bin/vm-test/. See
# hack/vm/run.sh.

# The kernel ABI, resolved once against bookworm-security; when apt no
# longer offers it, hack/vm/kernel.sh takes the newest 6.1 and says so.
VM_KERNEL_ABI ?= 6.1.0-57
VM_CACHE      ?= $(HOME)/.cache/stockade/vm
VM_TIMEOUT    ?= 840
VM_RUN        ?=
# qemu, kmod's depmod/modprobe (module dependencies of the unpacked
# kernel), cpio (the initramfs), e2fsprogs (the scratch disk).
VM_APT_PACKAGES := qemu-system-x86 kmod cpio e2fsprogs

.PHONY: vm-test vm-deps

vm-deps: apt-deps
	$(call apt_install,$(VM_APT_PACKAGES))

vm-test: deps build images vm-deps
	VM_KERNEL_ABI=$(VM_KERNEL_ABI) VM_CACHE=$(VM_CACHE) VM_TIMEOUT=$(VM_TIMEOUT) VM_RUN='$(VM_RUN)' \
		hack/vm/run.sh
