package bench

import (
	"strings"
	"testing"
	"time"
)

// A start as the kernel traced it (lines from a real trace, trimmed): the
// shim daemon (100, thread 101) forks runc init (200, which re-execs),
// whose nsexec children end in the container's process (203); its init
// probes libseccomp, opens files, loads the filter, waits on the exec FIFO
// and execs true. Lines of other processes are interleaved.
const sampleTrace = `# tracer: nop
 containerd-shim-100   [000] .....  1000.010000: sched_process_exec: filename=/usr/bin/containerd-shim-stockade-v1 pid=100 old_pid=100
 containerd-shim-100   [000] .....  1000.011000: sched_process_fork: comm=containerd-shim pid=100 child_comm=containerd-shim child_pid=101
 containerd-shim-101   [001] .N...  1000.030000: sched_process_fork: comm=containerd-shim pid=101 child_comm=containerd-shim child_pid=200
             exe-200   [001] .....  1000.031000: sched_process_exec: filename=/proc/self/exe pid=200 old_pid=200
             exe-200   [001] .....  1000.032000: sched_process_fork: comm=exe pid=200 child_comm=exe child_pid=201
 runc:[0:PARENT]-201   [001] .....  1000.033000: sched_process_exec: filename=/proc/self/fd/6 pid=201 old_pid=201
 runc:[0:PARENT]-201   [001] .....  1000.034000: sched_process_fork: comm=runc:[0:PARENT] pid=201 child_comm=runc:[1:CHILD] child_pid=202
  runc:[1:CHILD]-202   [000] .....  1000.040000: sched_process_fork: comm=runc:[1:CHILD] pid=202 child_comm=runc:[1:CHILD] child_pid=203
         compile-999   [001] .....  1000.041000: sched_process_exec: filename=/usr/local/go/pkg/tool/linux_amd64/compile pid=999 old_pid=999
            true-203   [000] .....  1000.042000: sched_process_fork: comm=runc:[2:INIT] pid=203 child_comm=runc:[2:INIT] child_pid=204
            true-203   [000] .....  1000.043000: sys_seccomp(op: 1, flags: 1, uargs: 0)
            true-203   [000] .....  1000.043001: sys_seccomp -> 0xfffffffffffffff2
            true-203   [000] .....  1000.050000: sys_openat(dfd: 0xffffffffffffff9c, filename: 0x7ffe, flags: 0x80000, mode: 0)
            true-203   [000] .....  1000.050010: sys_openat -> 0x8
            true-204   [001] .....  1000.051000: sys_prctl(option: 0xf, arg2: 0x7ffe, arg3: 0, arg4: 0, arg5: 0)
            true-204   [001] .....  1000.051001: sys_prctl -> 0x0
            true-203   [000] .....  1000.060000: sys_openat(dfd: 0xffffffffffffff9c, filename: 0x7ffe, flags: 0x80000, mode: 0)
            true-203   [000] .....  1000.060005: sys_openat -> 0x9
            true-203   [000] .....  1000.064000: sys_seccomp(op: 1, flags: 0xe, uargs: 0x1f0467e9f5b0)
            true-203   [000] .....  1000.064200: sys_seccomp -> 0xa
            true-203   [000] .....  1000.070000: sys_openat(dfd: 0xffffffffffffff9c, filename: 0x7ffe, flags: 0x1, mode: 0)
            true-203   [000] .....  1000.079000: sys_openat -> 0x5
            true-203   [000] .....  1000.080000: sched_process_exec: filename=/bin/true pid=203 old_pid=203
`

func TestTimeline(t *testing.T) {
	var events []traceEvent
	for _, l := range strings.Split(sampleTrace, "\n") {
		if e, ok := parseTraceLine(l); ok {
			events = append(events, e)
		}
	}
	if len(events) != 23 {
		t.Fatalf("parsed %d events, want 23", len(events))
	}
	at := func(ms float64) time.Duration { return 1000*time.Second + time.Duration(ms*float64(time.Millisecond)) }
	tl, err := timeline(events, 203, at(0), at(75), at(76), at(85))
	if err != nil {
		t.Fatal(err)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for name, c := range map[string][2]float64{
		"shimExec": {ms(tl.shimExec), 10}, "initFork": {ms(tl.initFork), 30}, "containerFork": {ms(tl.containerFork), 40},
		"compileStart": {ms(tl.compileStart), 60.005}, "loadEnter": {ms(tl.loadEnter), 64}, "loadExit": {ms(tl.loadExit), 64.2},
		"waitStart": {ms(tl.waitStart), 70}, "started": {ms(tl.started), 79}, "exec": {ms(tl.exec), 80},
		"createDone": {ms(tl.createDone), 75}, "startSent": {ms(tl.startSent), 76}, "running": {ms(tl.running), 85},
	} {
		if d := c[0] - c[1]; d > 0.0005 || d < -0.0005 {
			t.Errorf("%s = %.4f ms, want %.4f", name, c[0], c[1])
		}
	}
	if _, err := timeline(events, 777, at(0), at(1), at(2), at(3)); err == nil {
		t.Error("a pid that is not in the trace gave a timeline")
	}
}

func TestParseTraceLinePrctlLoad(t *testing.T) {
	e, ok := parseTraceLine(`            true-17879   [001] .....  8281.832604: sys_prctl(option: 0x16, arg2: 2, arg3: 0x7ffe1d97ca58, arg4: 0, arg5: 0)`)
	if !ok || e.kind != "seccomp_enter" || e.args == 0 || e.tid != 17879 {
		t.Errorf("PR_SET_SECCOMP filter load parsed as %+v", e)
	}
	e, ok = parseTraceLine(`            true-17879   [001] .....  8281.832604: sys_prctl(option: 0x18, arg2: 0x26, arg3: 0, arg4: 0, arg5: 0)`)
	if !ok || e.kind != "prctl_enter" {
		t.Errorf("PR_CAPBSET_DROP parsed as %+v", e)
	}
}
