package recorded

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/profiles/seccomp"
)

const (
	// APIVersion and Kind head every stored profile, so a file is
	// recognisable on its own and the format can change later.
	APIVersion = "stockade.dev/v1"
	Kind       = "RecordedSeccompProfile"
)

// Image is an image a recording ran.
type Image struct {
	Name   string `json:"name"`
	Digest string `json:"digest,omitempty"` // "sha256:..." when known
}

func (i Image) String() string {
	if i.Digest == "" {
		return i.Name
	}
	return i.Name + "@" + i.Digest
}

func compareImages(a, b Image) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return strings.Compare(a.Digest, b.Digest)
}

// Profile is one recorded profile as stored. Its JSON form is the stored
// document (see the package documentation); Name is written as the
// top-level fields namespace, workload and container.
type Profile struct {
	APIVersion string `json:"apiVersion"` // APIVersion
	Kind       string `json:"kind"`       // Kind
	Name       Name   `json:"-"`
	// Images are the images recordings ran: sorted by name then digest,
	// unique.
	Images []Image `json:"images,omitempty"`
	// Runs counts the recordings merged into the profile.
	Runs          int       `json:"runs"`
	FirstRecorded time.Time `json:"firstRecorded"`
	LastRecorded  time.Time `json:"lastRecorded"`
	// Syscalls per seccomp architecture (SCMP_ARCH_X86_64, SCMP_ARCH_X86,
	// ...): sorted, unique names.
	Syscalls map[specs.Arch][]string `json:"syscalls"`
	// Checksum is "sha256:<hex>" of the canonical encoding of every other
	// field.
	Checksum string `json:"checksum"`
}

// document is the stored layout of a Profile.
type document struct {
	APIVersion    string                  `json:"apiVersion"`
	Kind          string                  `json:"kind"`
	Namespace     string                  `json:"namespace"`
	Workload      string                  `json:"workload"`
	Container     string                  `json:"container"`
	Images        []Image                 `json:"images,omitempty"`
	Runs          int                     `json:"runs"`
	FirstRecorded time.Time               `json:"firstRecorded"`
	LastRecorded  time.Time               `json:"lastRecorded"`
	Syscalls      map[specs.Arch][]string `json:"syscalls"`
	Checksum      string                  `json:"checksum,omitempty"`
}

func (p Profile) document() document {
	sys := p.Syscalls
	if sys == nil {
		// Absent and empty must hash alike.
		sys = map[specs.Arch][]string{}
	}
	return document{
		APIVersion: p.APIVersion, Kind: p.Kind,
		Namespace: p.Name.Namespace, Workload: p.Name.Workload, Container: p.Name.Container,
		Images: p.Images, Runs: p.Runs, FirstRecorded: p.FirstRecorded, LastRecorded: p.LastRecorded,
		Syscalls: sys, Checksum: p.Checksum,
	}
}

// MarshalJSON writes the stored document as is; Encode is what seals it.
func (p Profile) MarshalJSON() ([]byte, error) {
	return json.Marshal(p.document())
}

// UnmarshalJSON reads a stored document strictly: unknown fields are
// errors. It does not validate; Decode does.
func (p *Profile) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var d document
	if err := dec.Decode(&d); err != nil {
		return err
	}
	*p = Profile{
		APIVersion: d.APIVersion, Kind: d.Kind,
		Name:   Name{Namespace: d.Namespace, Workload: d.Workload, Container: d.Container},
		Images: d.Images, Runs: d.Runs, FirstRecorded: d.FirstRecorded, LastRecorded: d.LastRecorded,
		Syscalls: d.Syscalls, Checksum: d.Checksum,
	}
	return nil
}

// New returns the profile of one recording of name: image img (no image
// when img.Name is empty), at time at, with the syscalls seen per ABI. The
// lists are copied, sorted and deduplicated; the profile is sealed (its
// Checksum is set).
func New(name Name, img Image, at time.Time, syscalls map[specs.Arch][]string) *Profile {
	p := &Profile{
		APIVersion: APIVersion, Kind: Kind, Name: name, Runs: 1,
		FirstRecorded: at.UTC(), LastRecorded: at.UTC(),
		Syscalls: unionSyscalls(syscalls),
	}
	if img.Name != "" {
		p.Images = []Image{img}
	}
	p.seal()
	return p
}

// Merge returns the profile of every recording in a and b: the union of
// their syscalls per ABI and of their images, the sum of their runs, the
// earliest first and the latest last recording. It changes neither input,
// and Merge(a, b) equals Merge(b, a); Merge(Merge(a, b), c) equals
// Merge(a, Merge(b, c)). The names must be equal.
func Merge(a, b *Profile) (*Profile, error) {
	if a == nil || b == nil {
		return nil, fmt.Errorf("merge recorded profiles: nil profile: %w", errdefs.ErrInvalidArgument)
	}
	if a.Name != b.Name {
		return nil, fmt.Errorf("cannot merge recorded profile %q with %q: names differ: %w", b.Name, a.Name, errdefs.ErrInvalidArgument)
	}
	first, last := a.FirstRecorded, a.LastRecorded
	if b.FirstRecorded.Before(first) {
		first = b.FirstRecorded
	}
	if b.LastRecorded.After(last) {
		last = b.LastRecorded
	}
	p := &Profile{
		APIVersion: APIVersion, Kind: Kind, Name: a.Name,
		Images:        normalizeImages(append(slices.Clone(a.Images), b.Images...)),
		Runs:          a.Runs + b.Runs,
		FirstRecorded: first.UTC(), LastRecorded: last.UTC(),
		Syscalls: unionSyscalls(a.Syscalls, b.Syscalls),
	}
	p.seal()
	return p, nil
}

// unionSyscalls returns new sorted, unique lists; ABIs with no names are
// left out, so that "nothing recorded" has one representation.
func unionSyscalls(ms ...map[specs.Arch][]string) map[specs.Arch][]string {
	out := map[specs.Arch][]string{}
	for _, m := range ms {
		for arch, names := range m {
			out[arch] = append(out[arch], names...)
		}
	}
	for arch, names := range out {
		if len(names) == 0 {
			delete(out, arch)
			continue
		}
		slices.Sort(names)
		out[arch] = slices.Compact(names)
	}
	return out
}

func normalizeImages(imgs []Image) []Image {
	if len(imgs) == 0 {
		return nil
	}
	slices.SortFunc(imgs, compareImages)
	return slices.Compact(imgs)
}

// Names returns every recorded syscall name, over all ABIs, sorted.
func (p *Profile) Names() []string {
	var all []string
	for _, names := range p.Syscalls {
		all = append(all, names...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// canonical is what Checksum covers: the document without its checksum,
// as compact JSON with the keys of every object sorted and no HTML
// escaping — what `jq -cjS 'del(.checksum)'` prints for a stored file.
// Sorting the keys keeps the hash independent of the stored layout.
func canonical(p *Profile) ([]byte, error) {
	d := p.document()
	d.Checksum = ""
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func checksum(p *Profile) (string, error) {
	c, err := canonical(p)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// seal sets the checksum of a profile built here. The only fields that
// can fail to encode are times outside years 0-9999; such a profile is
// left without a checksum, which Validate and Encode then report.
func (p *Profile) seal() {
	p.Checksum, _ = checksum(p)
}

// Validate checks everything a stored profile promises: apiVersion and
// kind, the name, that every ABI is one of goarch's and every syscall name
// is known there, that lists are sorted and unique, and that Checksum
// matches. Errors name the field and wrap errdefs.ErrInvalidArgument.
func (p *Profile) Validate(goarch string) error {
	if err := p.check(goarch, true); err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// check is Validate with plain errors, so that Decode can report the same
// findings as data loss. Without withSum it skips the checksum: Save seals
// the profiles it is handed itself.
// ValidateUnsealed is Validate without the checksum, for a profile about to
// be sealed (the store seals what it saves). Errors are plain, for the
// caller to give a kind.
func (p *Profile) ValidateUnsealed(goarch string) error { return p.check(goarch, false) }

// Normalize returns p as Merge would, without changing p: syscall lists
// sorted and deduplicated, times in UTC, the checksum sealed.
func Normalize(p *Profile) *Profile {
	c := &Profile{
		APIVersion: APIVersion, Kind: Kind, Name: p.Name,
		Images: slices.Clone(p.Images), Runs: p.Runs,
		FirstRecorded: p.FirstRecorded.UTC(), LastRecorded: p.LastRecorded.UTC(),
		Syscalls: unionSyscalls(p.Syscalls),
	}
	c.seal()
	return c
}

func (p *Profile) check(goarch string, withSum bool) error {
	if err := p.checkShape(); err != nil {
		return err
	}
	abis, err := seccomp.ABIs(goarch)
	if err != nil {
		return err
	}
	for _, a := range sortedArches(p.Syscalls) {
		if !slices.Contains(abis, a) {
			return fmt.Errorf("syscalls[%s]: not an ABI of %s (want one of %s)", a, goarch, joinArches(abis))
		}
		for i, name := range p.Syscalls[a] {
			if !seccomp.Known(goarch, name) {
				return fmt.Errorf("syscalls[%s][%d]: unknown syscall %q", a, i, name)
			}
		}
	}
	if !withSum {
		return nil
	}
	if p.Checksum == "" {
		return errors.New("checksum: missing")
	}
	sum, err := checksum(p)
	if err != nil {
		return fmt.Errorf("checksum: %w", err)
	}
	if sum != p.Checksum {
		return fmt.Errorf("checksum: content hashes to %s, profile says %s (edited without updating the checksum?)", sum, p.Checksum)
	}
	return nil
}

// checkShape is what can be checked without knowing the architecture:
// what Encode insists on before writing anything.
func (p *Profile) checkShape() error {
	switch {
	case p.APIVersion != APIVersion:
		return fmt.Errorf("apiVersion: %q, want %q", p.APIVersion, APIVersion)
	case p.Kind != Kind:
		return fmt.Errorf("kind: %q, want %q", p.Kind, Kind)
	case p.Runs < 1:
		return fmt.Errorf("runs: %d, want at least 1", p.Runs)
	case p.FirstRecorded.After(p.LastRecorded):
		return fmt.Errorf("firstRecorded: %s is after lastRecorded %s", p.FirstRecorded.Format(time.RFC3339Nano), p.LastRecorded.Format(time.RFC3339Nano))
	}
	if err := p.Name.check(); err != nil {
		return err
	}
	for i, img := range p.Images {
		if img.Name == "" {
			return fmt.Errorf("images[%d].name: empty", i)
		}
		if img.Digest != "" {
			if _, err := digest.Parse(img.Digest); err != nil {
				return fmt.Errorf("images[%d].digest: %q: %w", i, img.Digest, err)
			}
		}
		if i > 0 {
			switch c := compareImages(p.Images[i-1], img); {
			case c == 0:
				return fmt.Errorf("images[%d]: %s listed twice", i, img)
			case c > 0:
				return fmt.Errorf("images[%d]: %s sorts before %s: not sorted", i, img, p.Images[i-1])
			}
		}
	}
	for _, a := range sortedArches(p.Syscalls) {
		names := p.Syscalls[a]
		for i := 1; i < len(names); i++ {
			switch c := strings.Compare(names[i-1], names[i]); {
			case c == 0:
				return fmt.Errorf("syscalls[%s][%d]: %q listed twice", a, i, names[i])
			case c > 0:
				return fmt.Errorf("syscalls[%s][%d]: %q sorts before %q: not sorted", a, i, names[i], names[i-1])
			}
		}
	}
	return nil
}

func sortedArches(m map[specs.Arch][]string) []specs.Arch {
	as := make([]specs.Arch, 0, len(m))
	for a := range m {
		as = append(as, a)
	}
	slices.Sort(as)
	return as
}

func joinArches(as []specs.Arch) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// Encode seals p (sets its Checksum) and returns the stored document:
// indented JSON with a trailing newline. It refuses a profile Decode would
// reject for its shape (the architecture-dependent checks are Save's).
func Encode(p *Profile) ([]byte, error) {
	if err := p.checkShape(); err != nil {
		return nil, fmt.Errorf("recorded profile %s: %w: %w", p.Name, err, errdefs.ErrInvalidArgument)
	}
	sum, err := checksum(p)
	if err != nil {
		return nil, fmt.Errorf("recorded profile %s: %w: %w", p.Name, err, errdefs.ErrInvalidArgument)
	}
	p.Checksum = sum
	out, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("recorded profile %s: %w: %w", p.Name, err, errdefs.ErrInvalidArgument)
	}
	return append(out, '\n'), nil
}

// Decode reads a stored document and validates it for goarch. Anything
// wrong with it is corruption: the error wraps errdefs.ErrDataLoss and no
// profile is returned.
func Decode(data []byte, goarch string) (*Profile, error) {
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("corrupt recorded profile: %v: %w", err, errdefs.ErrDataLoss)
	}
	if err := p.check(goarch, true); err != nil {
		return nil, fmt.Errorf("corrupt recorded profile: %w: %w", err, errdefs.ErrDataLoss)
	}
	return &p, nil
}
