// Package contrib_test keeps the files in contrib/ honest: the example node
// config must parse, document every key the shim knows and state the
// defaults the code really has; the containerd drop-in must merge into a
// containerd config and reach the shim as runtime options.
package contrib_test

import (
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/stockade-dev/stockade/config"
)

const exampleConfig = "config.toml"

func readExample(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestExampleConfigParses: the shim would refuse a node config it cannot
// parse, so the example must always be one it accepts.
func TestExampleConfigParses(t *testing.T) {
	if _, err := config.Parse(readExample(t)); err != nil {
		t.Fatalf("contrib/%s: %v", exampleConfig, err)
	}
}

// TestExampleConfigStatesDefaults: the example sets every key to its
// default, so an operator can read the defaults off it; a changed default
// in config/ must be changed here too.
func TestExampleConfigStatesDefaults(t *testing.T) {
	got, err := config.Parse(readExample(t))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	normalize(reflect.ValueOf(got).Elem())
	normalize(reflect.ValueOf(want).Elem())
	gv, wv := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	for _, key := range configKeys(reflect.TypeOf(config.Config{}), "") {
		g, w := fieldByKey(gv, key), fieldByKey(wv, key)
		if !reflect.DeepEqual(g.Interface(), w.Interface()) {
			t.Errorf("contrib/%s: %s = %#v, but the default is %#v", exampleConfig, key, g.Interface(), w.Interface())
		}
	}
}

// TestExampleConfigHasEveryKey walks the toml tags of the Go config structs:
// a key added to config/ without a line in the example fails here.
func TestExampleConfigHasEveryKey(t *testing.T) {
	data := readExample(t)
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	flatten(doc, "", inFile)
	for _, key := range configKeys(reflect.TypeOf(config.Config{}), "") {
		if !inFile[key] {
			t.Errorf("contrib/%s does not set %s", exampleConfig, key)
		}
	}
}

// TestExampleConfigDocumentsEveryKey: each key (or a run of adjacent keys)
// has a comment above it.
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	lines := strings.Split(string(readExample(t)), "\n")
	isKey := func(l string) bool {
		l = strings.TrimSpace(l)
		return l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "[") && strings.Contains(l, "=")
	}
	for i, l := range lines {
		if !isKey(l) {
			continue
		}
		j := i - 1
		for j >= 0 && isKey(lines[j]) {
			j--
		}
		if j < 0 || !strings.HasPrefix(strings.TrimSpace(lines[j]), "#") {
			t.Errorf("contrib/%s line %d: %q has no comment above it", exampleConfig, i+1, strings.TrimSpace(l))
		}
	}
}

// configKeys returns the dotted toml keys of a config struct type, sorted.
func configKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if f.Type.Kind() == reflect.Struct {
			out = append(out, configKeys(f.Type, prefix+tag+".")...)
			continue
		}
		out = append(out, prefix+tag)
	}
	sort.Strings(out)
	return out
}

// fieldByKey follows a dotted toml key through struct fields.
func fieldByKey(v reflect.Value, key string) reflect.Value {
	head, rest, nested := strings.Cut(key, ".")
	t := v.Type()
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("toml"), ",")[0]
		if tag == "" {
			tag = t.Field(i).Name
		}
		if tag != head {
			continue
		}
		if nested {
			return fieldByKey(v.Field(i), rest)
		}
		return v.Field(i)
	}
	panic("no field for key " + key)
}

// normalize turns empty slices into nil: `x = []` in the file and an unset
// slice in Default mean the same.
func normalize(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Kind() == reflect.Struct:
			normalize(f)
		case f.Kind() == reflect.Slice && f.Len() == 0 && f.CanSet():
			f.Set(reflect.Zero(f.Type()))
		}
	}
}

func flatten(m map[string]any, prefix string, out map[string]bool) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			flatten(sub, prefix+k+".", out)
			continue
		}
		out[prefix+k] = true
	}
}
