package seccomp

import (
	"cmp"
	"errors"
	"math/bits"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file is a small set algebra over syscall arguments. It exists because
// libseccomp cannot express "allow these argument values, deny the rest" as
// one rule: a syscall that has conditional rules may not also have an
// unconditional rule with another action (seccomp_rule_add fails with
// EEXIST), and when two conditional rules with different actions overlap,
// which one wins depends on libseccomp's internal ordering. So every
// arg-conditioned syscall is emitted as allow rules plus explicit deny rules
// that are pairwise disjoint and together cover every possible call.
//
// A second libseccomp property shapes the algebra: on 32-bit ABIs (x86, arm,
// and x32, which libseccomp treats as 32-bit although its registers are not)
// it silently drops the upper half of every 64-bit comparison. A condition
// whose meaning lives in the upper half (a mask above bit 31, say) would
// become "always true" there and deny, or allow, every call. So every atom
// below is built from comparisons whose upper-half part is either absent or
// harmless when dropped:
//
//	anyValue  — no condition
//	highValue — SCMP_CMP_GT 0xffffffff: the upper half is non-zero
//	            (never true on a 32-bit ABI, where arguments are 32 bits)
//	lowCube   — upper half zero and (low & mask) == value, written as
//	            SCMP_CMP_EQ or SCMP_CMP_MASKED_EQ with the upper mask all ones
//	            (on a 32-bit ABI only the low comparison remains: exact)

// maxBoxes bounds the rules one syscall may expand to: pod profiles are
// untrusted input, complements multiply, and libseccomp's compile time
// grows with the rules.
const maxBoxes = 256

// errTooComplex is returned when argument conditions expand past maxBoxes.
var errTooComplex = errors.New("argument conditions expand to too many rules")

// cube is the set of 32-bit values x with x&mask == value.
type cube struct{ mask, value uint32 }

func (c cube) intersect(d cube) (cube, bool) {
	if (c.value^d.value)&c.mask&d.mask != 0 {
		return cube{}, false
	}
	return cube{c.mask | d.mask, c.value | d.value}, true
}

// complement returns disjoint cubes covering every 32-bit value not in c,
// splitting on the mask bits from the most significant down, which for a
// single point or a range is the minimal aligned-block decomposition.
func (c cube) complement() []cube {
	var out []cube
	var prefix uint32
	for m := c.mask; m != 0; {
		bit := uint32(1) << (31 - bits.LeadingZeros32(m))
		out = append(out, cube{prefix | bit, (c.value & prefix) | (^c.value & bit)})
		prefix |= bit
		m &^= bit
	}
	return out
}

func (c cube) contains(x uint32) bool { return x&c.mask == c.value }

// rangeCubes returns disjoint aligned cubes covering [lo, hi].
func rangeCubes(lo, hi uint32) []cube {
	var out []cube
	for x := uint64(lo); x <= uint64(hi); {
		size := uint64(1)
		// Grow the block while it stays aligned and inside the range.
		for size < 1<<32 && x&(size*2-1) == 0 && x+size*2-1 <= uint64(hi) {
			size *= 2
		}
		out = append(out, cube{^uint32(size - 1), uint32(x)})
		x += size
	}
	return out
}

type atomKind uint8

const (
	anyValue atomKind = iota
	highValue
	lowCube
	// atLeast (x >= c.value, upper half included) and atMost (x <= c.value)
	// only appear after compact, just before rules are written: single
	// comparisons that replace runs of cubes.
	atLeast
	atMost
)

// atom is a set of 64-bit argument values; see the comment at the top.
type atom struct {
	kind atomKind
	c    cube
}

func low(c cube) atom { return atom{kind: lowCube, c: c} }

var high = atom{kind: highValue}

func (a atom) intersect(b atom) (atom, bool) {
	switch {
	case a.kind == anyValue:
		return b, true
	case b.kind == anyValue:
		return a, true
	case a.kind == highValue && b.kind == highValue:
		return a, true
	case a.kind != b.kind:
		return atom{}, false
	}
	c, ok := a.c.intersect(b.c)
	return low(c), ok
}

// minus returns disjoint atoms covering a \ b.
func (a atom) minus(b atom) []atom {
	switch b.kind {
	case anyValue:
		return nil
	case highValue:
		switch a.kind {
		case anyValue:
			return []atom{low(cube{})}
		case highValue:
			return nil
		}
		return []atom{a}
	}
	switch a.kind {
	case highValue:
		return []atom{a}
	case anyValue:
		out := []atom{high}
		for _, p := range b.c.complement() {
			out = append(out, low(p))
		}
		return out
	}
	var out []atom
	for _, p := range b.c.complement() {
		if c, ok := a.c.intersect(p); ok {
			out = append(out, low(c))
		}
	}
	return out
}

func (a atom) contains(x uint64) bool {
	switch a.kind {
	case anyValue:
		return true
	case highValue:
		return x > 0xffffffff
	case atLeast:
		return x >= uint64(a.c.value)
	case atMost:
		return x <= uint64(a.c.value)
	}
	return x <= 0xffffffff && a.c.contains(uint32(x))
}

// box is a conjunction of per-argument atoms (index = argument number).
type box [6]atom

func (b box) intersect(o box) (box, bool) {
	var out box
	for i := range b {
		a, ok := b[i].intersect(o[i])
		if !ok {
			return box{}, false
		}
		out[i] = a
	}
	return out, true
}

// minus returns disjoint boxes covering b \ o.
func (b box) minus(o box) []box {
	if _, ok := b.intersect(o); !ok {
		return []box{b}
	}
	var out []box
	prefix := b
	for i := range o {
		if o[i].kind == anyValue {
			continue
		}
		for _, r := range prefix[i].minus(o[i]) {
			piece := prefix
			piece[i] = r
			out = append(out, piece)
		}
		prefix[i], _ = prefix[i].intersect(o[i])
	}
	return out
}

func (b box) contains(args [6]uint64) bool {
	for i := range b {
		if !b[i].contains(args[i]) {
			return false
		}
	}
	return true
}

// set is a union of boxes; boxes in a set computed by minus are disjoint.
type set []box

var fullSet = set{box{}}

func (s set) minus(o set) (set, error) {
	out := s
	for _, ob := range o {
		var next set
		for _, b := range out {
			next = append(next, b.minus(ob)...)
		}
		if len(next) > maxBoxes {
			return nil, errTooComplex
		}
		out = next
	}
	return merge(out), nil
}

func (s set) intersect(o set) (set, error) {
	var out set
	for _, a := range s {
		for _, b := range o {
			if c, ok := a.intersect(b); ok {
				out = append(out, c)
			}
		}
		if len(out) > maxBoxes {
			return nil, errTooComplex
		}
	}
	return merge(out), nil
}

func (s set) union(o set) (set, error) {
	if len(s)+len(o) > maxBoxes {
		return nil, errTooComplex
	}
	return merge(append(append(set{}, s...), o...)), nil
}

func (s set) complement() (set, error) { return fullSet.minus(s) }

func (s set) contains(args [6]uint64) bool {
	for _, b := range s {
		if b.contains(args) {
			return true
		}
	}
	return false
}

// merge joins boxes that differ in one low cube by exactly one value bit, and
// a highValue/low(all) pair into anyValue, so aligned runs of values collapse
// into one rule. The union is unchanged.
func merge(s set) set {
	for changed := true; changed; {
		changed = false
		for i := 0; i < len(s) && !changed; i++ {
			for j := i + 1; j < len(s); j++ {
				if m, ok := mergeBoxes(s[i], s[j]); ok {
					s[i] = m
					s = append(s[:j], s[j+1:]...)
					changed = true
					break
				}
			}
		}
	}
	return s
}

func mergeBoxes(a, b box) (box, bool) {
	diff := -1
	for i := range a {
		if a[i] != b[i] {
			if diff >= 0 {
				return box{}, false
			}
			diff = i
		}
	}
	if diff < 0 {
		return a, true
	}
	x, y := a[diff], b[diff]
	var m atom
	switch {
	case x.kind == lowCube && y.kind == lowCube && x.c.mask == y.c.mask &&
		bits.OnesCount32(x.c.value^y.c.value) == 1:
		m = low(cube{x.c.mask &^ (x.c.value ^ y.c.value), x.c.value & y.c.value})
	case x.kind == highValue && y == low(cube{}), y.kind == highValue && x == low(cube{}):
		m = atom{}
	default:
		return box{}, false
	}
	a[diff] = m
	return a, true
}

// specArgs renders a box as runtime-spec conditions, one per constrained
// argument, so runc ANDs them into one libseccomp rule.
func (b box) specArgs() []specs.LinuxSeccompArg {
	var out []specs.LinuxSeccompArg
	for i, a := range b {
		switch {
		case a.kind == anyValue:
			continue
		case a.kind == highValue:
			out = append(out, specs.LinuxSeccompArg{Index: uint(i), Value: 0xffffffff, Op: specs.OpGreaterThan})
		case a.kind == atLeast:
			out = append(out, specs.LinuxSeccompArg{Index: uint(i), Value: uint64(a.c.value), Op: specs.OpGreaterEqual})
		case a.kind == atMost:
			out = append(out, specs.LinuxSeccompArg{Index: uint(i), Value: uint64(a.c.value), Op: specs.OpLessEqual})
		case a.c.mask == 0xffffffff:
			out = append(out, specs.LinuxSeccompArg{Index: uint(i), Value: uint64(a.c.value), Op: specs.OpEqualTo})
		case a.c.mask == 0:
			out = append(out, specs.LinuxSeccompArg{Index: uint(i), Value: 0xffffffff, Op: specs.OpLessEqual})
		default:
			out = append(out, specs.LinuxSeccompArg{
				Index:    uint(i),
				Value:    0xffffffff00000000 | uint64(a.c.mask),
				ValueTwo: uint64(a.c.value),
				Op:       specs.OpMaskedEqual,
			})
		}
	}
	return out
}

// compact replaces, among boxes that differ in one argument only, the
// cubes that together cover [0, c] by one atMost atom and the cubes plus
// highValue that cover [c, 2^64) by one atLeast atom. libseccomp's time
// (paid by runc at every container start) and the filter's length grow
// with the number of rules, and complements of value lists end in such runs.
// The union is unchanged; the result must not be fed back into the algebra.
func compact(s set) set {
	for i := 0; i < 6; i++ {
		groups := map[box][]atom{}
		var order []box
		for _, b := range s {
			key := b
			key[i] = atom{}
			if _, ok := groups[key]; !ok {
				order = append(order, key)
			}
			groups[key] = append(groups[key], b[i])
		}
		var out set
		for _, key := range order {
			for _, a := range compactAtoms(groups[key]) {
				b := key
				b[i] = a
				out = append(out, b)
			}
		}
		s = out
	}
	return s
}

// compactAtoms rewrites a prefix and a suffix run of interval cubes.
func compactAtoms(atoms []atom) []atom {
	hasHigh := false
	var ivs []cube // interval cubes: mask is all ones above an aligned block
	var rest []atom
	for _, a := range atoms {
		switch {
		case a.kind == highValue:
			hasHigh = true
		case a.kind == lowCube && bits.OnesCount32(^a.c.mask+1) <= 1 && a.c.mask != 0:
			ivs = append(ivs, a.c)
		default:
			rest = append(rest, a)
		}
	}
	slices.SortFunc(ivs, func(x, y cube) int { return cmp.Compare(x.value, y.value) })
	last := func(c cube) uint64 { return uint64(c.value) + uint64(^c.mask) }
	// Prefix: cubes contiguous from 0.
	n, end := 0, uint64(0)
	for n < len(ivs) && uint64(ivs[n].value) == end {
		end = last(ivs[n]) + 1
		n++
	}
	if n > 1 {
		rest = append(rest, atom{kind: atMost, c: cube{value: uint32(end - 1)}})
		ivs = ivs[n:]
	}
	// Suffix: cubes contiguous up to 0xffffffff, plus the upper half.
	m, start := len(ivs), uint64(1)<<32
	for m > 0 && last(ivs[m-1])+1 == start {
		start = uint64(ivs[m-1].value)
		m--
	}
	if hasHigh && m < len(ivs) {
		rest = append(rest, atom{kind: atLeast, c: cube{value: uint32(start)}})
		ivs, hasHigh = ivs[:m], false
	}
	var out []atom
	if hasHigh {
		out = append(out, high)
	}
	for _, c := range ivs {
		out = append(out, low(c))
	}
	return append(out, rest...)
}

// valuesSet is the set of calls whose argument idx is one of vals (upper half
// zero), merged into as few aligned cubes as possible.
func valuesSet(idx int, vals ...uint32) set {
	var s set
	for _, v := range vals {
		var b box
		b[idx] = low(cube{0xffffffff, v})
		s = append(s, b)
	}
	return merge(s)
}

// cubeSet is the set of calls whose argument idx is in c (upper half zero).
func cubeSet(idx int, c cube) set {
	var b box
	b[idx] = low(c)
	return set{b}
}

// pairCover tries to write deny (disjoint from allowed; together they
// cover every call) as overlapping cubes of two fixed bits, "bit b set and
// bit c clear", which is how the complement of a few values is smallest:
// personality's exact partition takes 61 cubes, this cover 32. It applies
// when both sets constrain one argument with low cubes (deny may also hold
// the upper-half box, kept as is); the candidates are the pairs of
// neighbouring bits and of bits two apart, cyclically, that stay clear of
// allowed. Every cube of deny must be covered, which is checked exactly;
// otherwise, or when the cover is not smaller, ok is false. The cubes
// overlap one another, never allowed: only rules of one action may be
// written from it.
func pairCover(deny, allowed set) (set, bool) {
	arg := -1
	same := func(b box) bool {
		i, ok := lowArg(b)
		if ok && (arg < 0 || i == arg) {
			arg = i
			return true
		}
		return false
	}
	for _, b := range allowed {
		if !same(b) {
			return nil, false
		}
	}
	var lows []cube
	var rest set
	highArg := -1
	for _, b := range deny {
		if same(b) {
			lows = append(lows, b[arg].c)
			continue
		}
		// The upper-half box: one argument, highValue.
		n := 0
		for i, a := range b {
			if a.kind != anyValue {
				n++
				if a.kind == highValue {
					highArg = i
				}
			}
		}
		if n != 1 || highArg < 0 {
			return nil, false
		}
		rest = append(rest, b)
	}
	if arg < 0 || len(lows) == 0 || (highArg >= 0 && highArg != arg) {
		return nil, false
	}
	clear := func(c cube) bool {
		for _, a := range allowed {
			if _, ok := c.intersect(a[arg].c); ok {
				return false
			}
		}
		return true
	}
	// Bits two apart first, so that the irredundancy pass below, which
	// drops from the end, keeps neighbours where both would do.
	var cand []cube
	for _, step := range []int{1, 2} {
		for b := 0; b < 32; b++ {
			set, clr := uint32(1)<<b, uint32(1)<<((b+step)%32)
			if c := (cube{set | clr, set}); clear(c) {
				cand = append(cand, c)
			}
		}
	}
	keep := slices.Repeat([]bool{true}, len(cand))
	var buf, stack []cube // reused by every check below
	others := func(skip int) []cube {
		buf = buf[:0]
		for j, c := range cand {
			if j != skip && keep[j] {
				buf = append(buf, c)
			}
		}
		return buf
	}
	for i := len(cand) - 1; i >= 0; i-- {
		budget := 1 << 14
		if coverWith(cand[i], others(i), &budget, &stack) {
			keep[i] = false
		}
	}
	cover := slices.Clone(others(-1))
	for _, d := range lows {
		budget := 1 << 16
		if !coverWith(d, cover, &budget, &stack) {
			return nil, false
		}
	}
	if len(cover)+len(rest) >= len(deny) {
		return nil, false
	}
	out := rest
	for _, c := range cover {
		var b box
		b[arg] = low(c)
		out = append(out, b)
	}
	return out, true
}

// lowArg returns the argument b constrains, when it constrains exactly one
// and with a low cube.
func lowArg(b box) (int, bool) {
	arg := -1
	for i, a := range b {
		switch {
		case a.kind == anyValue:
		case a.kind == lowCube && arg < 0:
			arg = i
		default:
			return 0, false
		}
	}
	return arg, arg >= 0
}

// coverWith reports whether the union of cs contains c, splitting c on a
// bit some cube fixes and c leaves free until every piece lies in one cube
// or meets none. Past the budget it answers false.
//
// One stack of cubes serves the whole recursion (a slice per call was most
// of a profile generation's allocations, megabytes at every pod's first
// start): each call appends the cubes meeting its piece above its caller's
// and truncates back when it returns. A deeper call that grows the stack
// moves it, but leaves the array the caller's meeting slice reads intact.
func coverWith(c cube, cs []cube, budget *int, stack *[]cube) bool {
	if *budget--; *budget < 0 {
		return false
	}
	base := len(*stack)
	defer func() { *stack = (*stack)[:base] }()
	for _, d := range cs {
		if _, ok := c.intersect(d); !ok {
			continue
		}
		if d.mask&^c.mask == 0 && c.value&d.mask == d.value {
			return true // d contains c
		}
		*stack = append(*stack, d)
	}
	meeting := (*stack)[base:]
	if len(meeting) == 0 {
		return false
	}
	free := meeting[0].mask &^ c.mask
	bit := uint32(1) << (31 - bits.LeadingZeros32(free))
	return coverWith(cube{c.mask | bit, c.value}, meeting, budget, stack) &&
		coverWith(cube{c.mask | bit, c.value | bit}, meeting, budget, stack)
}
