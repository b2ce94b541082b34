package seccomp

import (
	"math/rand/v2"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The algebra is checked against its own definition (contains) on sampled
// argument vectors: every operation, the compaction, and the rendering to
// runtime-spec conditions as runc, libseccomp on 64-bit ABIs and libseccomp
// on 32-bit ABIs (upper halves dropped) read them.

func randCube(r *rand.Rand) cube {
	switch r.IntN(4) {
	case 0: // a point
		return cube{0xffffffff, r.Uint32() >> r.IntN(32)}
	case 1: // an aligned block
		k := r.IntN(32)
		m := ^uint32(0) << k
		return cube{m, r.Uint32() & m}
	default: // a few fixed bits
		var m uint32
		for range 1 + r.IntN(4) {
			m |= 1 << r.IntN(32)
		}
		return cube{m, r.Uint32() & m}
	}
}

func randAtom(r *rand.Rand) atom {
	switch r.IntN(6) {
	case 0:
		return atom{}
	case 1:
		return high
	}
	return low(randCube(r))
}

func randSet(r *rand.Rand) set {
	var s set
	for range r.IntN(4) {
		var b box
		for range 1 + r.IntN(2) {
			b[r.IntN(3)] = randAtom(r)
		}
		s = append(s, b)
	}
	return s
}

// samples returns argument vectors near the edges of the sets' atoms.
func samples(r *rand.Rand, sets ...set) [][6]uint64 {
	var vals []uint64
	add := func(v ...uint64) { vals = append(vals, v...) }
	add(0, 1, 0xffffffff, 0x100000000, 0xffffffffffffffff)
	for _, s := range sets {
		for _, b := range s {
			for _, a := range b {
				c := a.c
				in := uint64(c.value | (r.Uint32() &^ c.mask))
				add(in, uint64(c.value), uint64(c.value|^c.mask), in|uint64(r.Uint32())<<32,
					uint64(c.value)-1, uint64(c.value|^c.mask)+1)
			}
		}
	}
	var out [][6]uint64
	for range 200 {
		var v [6]uint64
		for i := range v {
			v[i] = vals[r.IntN(len(vals))]
		}
		out = append(out, v)
	}
	return out
}

// matches32 reads conditions the way libseccomp compiles them for a 32-bit
// ABI: only the low halves of values, masks and arguments are compared.
func matches32(conds []specs.LinuxSeccompArg, args [6]uint64) bool {
	for _, c := range conds {
		x, v := uint32(args[c.Index]), uint32(c.Value)
		var ok bool
		switch c.Op {
		case specs.OpEqualTo:
			ok = x == v
		case specs.OpGreaterThan:
			ok = uint64(x) > c.Value // a 32-bit argument never exceeds 0xffffffff
		case specs.OpGreaterEqual:
			ok = x >= v
		case specs.OpLessEqual:
			ok = x <= v
		case specs.OpMaskedEqual:
			ok = x&v == uint32(c.ValueTwo)
		default:
			panic(c.Op)
		}
		if !ok {
			return false
		}
	}
	return true
}

func TestSetAlgebra(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 3000 {
		a, b := randSet(r), randSet(r)
		minus, err1 := a.minus(b)
		inter, err2 := a.intersect(b)
		uni, err3 := a.union(b)
		comp, err4 := a.complement()
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue // too complex is a legitimate answer
		}
		compacted := compact(minus)
		for _, x := range samples(r, a, b) {
			ina, inb := a.contains(x), b.contains(x)
			if minus.contains(x) != (ina && !inb) {
				t.Fatalf("iter %d: minus wrong at %x", iter, x)
			}
			if inter.contains(x) != (ina && inb) || uni.contains(x) != (ina || inb) || comp.contains(x) == ina {
				t.Fatalf("iter %d: intersect/union/complement wrong at %x", iter, x)
			}
			if compacted.contains(x) != minus.contains(x) {
				t.Fatalf("iter %d: compact changed the set at %x", iter, x)
			}
			// A complement is built by subtraction from one box: disjoint.
			var hits int
			for _, p := range comp {
				if p.contains(x) {
					hits++
				}
			}
			if hits > 1 {
				t.Fatalf("iter %d: complement pieces overlap at %x", iter, x)
			}
		}
	}
}

func TestSpecArgsMeaning(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := range 3000 {
		s, err := randSet(r).complement()
		if err != nil {
			continue
		}
		for _, b := range compact(s) {
			conds := b.specArgs()
			for _, x := range samples(r, set{b}) {
				if matches(conds, x) != b.contains(x) {
					t.Fatalf("iter %d: 64-bit reading of %+v differs at %x", iter, conds, x)
				}
				var x32 [6]uint64
				for i := range x {
					x32[i] = x[i] & 0xffffffff
				}
				if matches32(conds, x32) != b.contains(x32) {
					t.Fatalf("iter %d: 32-bit reading of %+v differs at %x", iter, conds, x32)
				}
			}
		}
	}
}

func TestRangeCubes(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		lo, hi := r.Uint32()>>r.IntN(32), r.Uint32()>>r.IntN(32)
		if lo > hi {
			lo, hi = hi, lo
		}
		cs := rangeCubes(lo, hi)
		for _, x := range []uint32{lo, hi, lo - 1, hi + 1, lo + (hi-lo)/2, 0, 0xffffffff} {
			in := 0
			for _, c := range cs {
				if c.contains(x) {
					in++
				}
			}
			if want := x >= lo && x <= hi; (in == 1) != want || in > 1 {
				t.Fatalf("[%x,%x]: %x covered %d times", lo, hi, x, in)
			}
		}
	}
}

// TestPairCoverPersonality: personality's deny rules are a cover of
// overlapping two-bit cubes, far fewer than the exact partition, and the
// profile still allows exactly the baseline's values: checked on every
// value with one or two bits set, runs of ones, their complements, random
// values and values with the upper half set, against the set algebra.
func TestPairCoverPersonality(t *testing.T) {
	vs, err := decide(capsOf(specWith(defaultCaps)), familyX86, nil)
	if err != nil {
		t.Fatal(err)
	}
	var v verdict
	for _, x := range vs {
		if x.name == "personality" {
			v = x
		}
	}
	deny := append(append(set{}, v.hard...), v.policy...)
	cover, ok := pairCover(deny, v.allowed)
	if !ok {
		t.Fatal("no pair cover for personality")
	}
	if exact := len(compact(v.hard)) + len(compact(v.policy)); len(cover) >= exact/2+4 {
		t.Errorf("cover has %d cubes, exact partition %d", len(cover), exact)
	}
	for _, b := range cover {
		for _, a := range v.allowed {
			if _, meets := b.intersect(a); meets {
				t.Fatalf("cover cube %+v meets allowed %+v", b[0], a[0])
			}
		}
	}
	p := mustGenerate(t, specWith(defaultCaps), Policy{Arch: "amd64"})
	var vals []uint64
	for i := 0; i < 32; i++ {
		for j := 0; j < 32; j++ {
			vals = append(vals, 1<<i|1<<j, ^uint64(1<<i|1<<j)&0xffffffff)
		}
		run := uint64(1)<<(i+1) - 1
		vals = append(vals, run, run<<(31-i)&0xffffffff, ^run&0xffffffff, 1<<i|8, 1<<i|0x20000)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		a, b := r.Uint32(), r.Uint32()
		vals = append(vals, uint64(r.Uint32()), uint64(a&b), r.Uint64())
	}
	vals = append(vals, 0, 8, 0x20000, 0x20008, 0xffffffff, 1<<32, 1<<32|8, ^uint64(0))
	for _, x := range vals {
		args := [6]uint64{x}
		// A denied value must hit an explicit EPERM rule, not fall to
		// the default action's ENOSYS.
		act, errno := Evaluate(p, "personality", args)
		denied := act == specs.ActErrno && errno == DenyErrno
		if (act == specs.ActAllow) != v.allowed.contains(args) || (act != specs.ActAllow && !denied) {
			t.Fatalf("personality(%#x) = %s/%d, baseline allows: %v", x, act, errno, v.allowed.contains(args))
		}
	}
}
