// Package recorded holds the seccomp profiles stockade records: in record
// mode the shim notes every syscall, per ABI, that a container's processes
// make, and when the container exits it merges that recording into a
// profile store on the node. A pod enforces the result with the annotation
// stockade.dev/seccomp-profile: <workload>/<container> (the namespace is
// the pod's own).
//
// # Format
//
// A profile is named namespace/workload/container (Name), each part 1 to
// 253 characters of a-z, 0-9, '-' and '.', starting and ending with a
// letter or digit. The store (node/profilestore) keeps it in one JSON file,
// <store>/<namespace>/<workload>/<container>.json:
//
//	{
//	  "apiVersion": "stockade.dev/v1",
//	  "kind": "RecordedSeccompProfile",
//	  "namespace": "shop",
//	  "workload": "web",
//	  "container": "app",
//	  "images": [{"name": "docker.io/library/nginx:1.27", "digest": "sha256:..."}],
//	  "runs": 3,
//	  "firstRecorded": "2026-03-04T12:00:00Z",
//	  "lastRecorded": "2026-03-05T08:30:00Z",
//	  "syscalls": {"SCMP_ARCH_X86_64": ["accept4", "brk", ...], "SCMP_ARCH_X86": [...]},
//	  "checksum": "sha256:..."
//	}
//
// Images are sorted by name then digest, syscall names sorted, both
// without duplicates; an ABI appears only if something was recorded on it,
// and must be one of the node's (x86_64, x86 and x32 on amd64; aarch64 and
// arm on arm64), with names libseccomp knows there. Unknown fields are
// errors.
//
// # Merging
//
// Every recording of a name is merged into one profile: the union of the
// syscalls per ABI and of the images, the sum of the runs, the earliest
// firstRecorded and the latest lastRecorded. Merge is commutative and
// associative, so the result does not depend on the order in which
// replicas' shims save. A profile only grows: a code path that a recording
// did not exercise stays out of it until one does.
//
// # Integrity
//
// The checksum is the SHA-256 of the canonical encoding of every other
// field: the document without "checksum", as compact JSON with the keys of
// every object sorted and no HTML escaping, which is what
//
//	jq -cjS 'del(.checksum)' FILE | sha256sum
//
// prints. A file that fails to parse, has unknown fields, names an unknown
// syscall or ABI, is unsorted, sits at a path that does not match its name
// or does not match its checksum is corrupt: Decode and the store return
// an error wrapping errdefs.ErrDataLoss and never the profile, the store
// does not merge new recordings into it or overwrite it, and the operator
// decides (move it away and record again, or fix it and its checksum). The
// checksum catches truncation, bit rot and hand edits; it is no signature,
// and anyone who can write the store can recompute it.
//
// # Concurrency
//
// Several shims (replicas of one workload on one node) may save the same
// name at once, from different processes. Save holds an exclusive flock on
// <path>.lock while it reads, merges and writes, and writes by renaming a
// synced temporary file in the same directory, then syncs the directory:
// readers take no lock and see the old or the new profile, never a mix,
// also after a crash. Lock files stay behind (removing one a waiter holds
// open would let two writers in), except that Delete removes its own while
// holding it, and lockers then check that the file they locked is still
// the one at the path.
package recorded
