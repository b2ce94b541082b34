// Package node is the root of stockade's node state: what lives on the
// node beyond one container and is shared by every shim on it. The
// generators under profiles/ are pure (a spec in, a profile out); the
// packages here are where those profiles and ranges meet the host:
//
//   - idalloc: the host ID ranges leased to pods, on disk, shared by shims
//   - idmapfs: which filesystems can be idmapped on this kernel
//   - netns: writing net.* sysctls inside a pod's network namespace
//   - apparmorhost: probing AppArmor, loading and unloading profiles
//   - profilestore: recorded seccomp profiles, on disk
//   - fileutil: the durable write and the file lock all of them use
//
// Imports point down the data flow: hooks and the CLI import these; these
// import profiles/ and nothing from shim/.
package node
