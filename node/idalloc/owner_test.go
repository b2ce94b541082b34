package idalloc

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/stockade-dev/stockade/profiles/userns"
)

func TestParseStat(t *testing.T) {
	// A command name may hold spaces and parentheses.
	line := "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10\n"
	start, state, err := parseStat([]byte(line))
	if err != nil || start != 987654 || state != 'S' {
		t.Fatalf("parseStat = %d %c %v", start, state, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 notanumber"} {
		if _, _, err := parseStat([]byte(bad)); !errors.Is(err, userns.ErrInvalid) {
			t.Errorf("parseStat(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestOwnerAlive(t *testing.T) {
	me, err := CurrentOwner()
	if err != nil {
		t.Fatal(err)
	}
	if me.Pid != os.Getpid() || me.StartTime == 0 {
		t.Fatalf("CurrentOwner = %+v", me)
	}
	if !me.Alive() || !OwnerAlive(Lease{Owner: me}) {
		t.Fatal("the test process is not alive")
	}

	// Same pid, other start time: the pid was reused.
	reused := me
	reused.StartTime++
	if reused.Alive() {
		t.Error("owner with a reused pid counts as alive")
	}

	// Same process, recorded in another boot.
	rebooted := me
	rebooted.BootID = "00000000-0000-0000-0000-000000000000"
	if me.BootID != "" && rebooted.Alive() {
		t.Error("owner from another boot counts as alive")
	}

	if (Owner{}).Alive() {
		t.Error("zero owner counts as alive")
	}

	// An exited, reaped child.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a child: %v", err)
	}
	child, err := ProcessOwner(cmd.Process.Pid)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		// The child may already be a zombie when we looked.
		child = Owner{Pid: cmd.Process.Pid, StartTime: 1, BootID: me.BootID}
	}
	if child.Alive() {
		t.Errorf("exited child %+v counts as alive", child)
	}
	if _, err := ProcessOwner(cmd.Process.Pid); !errors.Is(err, userns.ErrNotFound) {
		t.Errorf("ProcessOwner(exited) = %v, want ErrNotFound", err)
	}
}
