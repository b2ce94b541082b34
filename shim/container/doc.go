// Package container runs OCI containers in-process through runc's
// libcontainer. It is the only package in stockade that imports runc: it turns
// a (hooked) OCI spec into a libcontainer configuration, mounts the rootfs
// containerd handed over, starts the init and exec processes with their stdio,
// and watches them until they exit.
//
// Reaping has exactly one owner: every process libcontainer starts is waited
// for by libcontainer's Process.Wait (which waits on that pid only), from one
// goroutine per process. The shim framework's global reaper is switched off
// (shim.NoReaper), so no wait4(-1) can steal an exit status.
package container
