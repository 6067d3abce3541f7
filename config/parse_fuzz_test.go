package config

import (
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/qdrantrotator/rotator/rotation"
)

// FuzzParse feeds arbitrary files to the loader. It never panics, and either:
//   - refuses the file with errors that each name what is wrong, checkably: a YAML error names its line ("line N"),
//     an empty file is said to be empty, and every validation error is a fieldError whose Field is a path of the
//     Config structure as the file spells it (namesAField); or
//   - accepts it, and then the daemon can take it: every name passes the domain's rule and every schedule compiles
//     with rotation.NewSchedule.
//
// The seed corpus (testdata/fuzz/FuzzParse) holds the example file and one file per kind of mistake.
func FuzzParse(f *testing.F) {
	good, err := os.ReadFile("testdata/good.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if msg := namesAField(err); msg != "" {
				t.Fatalf("%s\nerror: %q\nfile: %q", msg, err, data)
			}
			return
		}
		for i, d := range c.Deployments {
			if err := rotation.ValidateName(d.Name); err != nil {
				t.Fatalf("deployments[%d] accepted with a name the domain refuses: %v", i, err)
			}
			for name := range d.Keys {
				if err := rotation.ValidateName(name); err != nil {
					t.Fatalf("deployments[%d].keys accepted with a name the domain refuses: %v", i, err)
				}
			}
			if spec, ok := d.ScheduleSpec(); ok {
				if _, err := rotation.NewSchedule(d.Name, spec); err != nil {
					t.Fatalf("deployments[%d] accepted with a schedule the daemon refuses: %v", i, err)
				}
			}
		}
	})
}

var yamlLine = regexp.MustCompile(`\bline \d+\b`)

// namesAField says what is wrong with a loader error ("" when nothing): it must be the empty file's, a YAML error
// naming its line, or one or more fieldErrors whose Field is a path through Config (fieldPath).
func namesAField(err error) string {
	if errors.Is(err, errEmpty) {
		return ""
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		if yamlLine.MatchString(err.Error()) {
			return ""
		}
		return "a parse error that names no line"
	}
	for _, e := range joined.Unwrap() {
		var fe *fieldError
		if !errors.As(e, &fe) {
			return "a validation error that is not a fieldError: " + e.Error()
		}
		if strings.TrimSpace(fe.Problem) == "" {
			return "a fieldError without a problem: " + fe.Field
		}
		if !fieldPath(reflect.TypeFor[Config](), "."+fe.Field) {
			return "a fieldError whose field is no path of the config: " + fe.Field
		}
	}
	return ""
}

// fieldPath says whether rest (".vault.lease_ttl", ".deployments[0] (prod).keys.search.collections[1]") is a path
// through t: a struct field by its yaml name after a dot, a slice element by [index] (optionally followed by
// " (label)"), a map entry by a dot and any key. Labels and map keys are the file's own text, so every way of
// splitting them off is tried.
func fieldPath(t reflect.Type, rest string) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if rest == "" {
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		after, ok := strings.CutPrefix(rest, ".")
		if !ok {
			return false
		}
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if r, ok := strings.CutPrefix(after, name); ok && name != "" && fieldPath(t.Field(i).Type, r) {
				return true
			}
		}
	case reflect.Slice:
		r, ok := strings.CutPrefix(rest, "[")
		if !ok {
			return false
		}
		end := strings.IndexByte(r, ']')
		if end <= 0 || strings.Trim(r[:end], "0123456789") != "" {
			return false
		}
		r = r[end+1:]
		if fieldPath(t.Elem(), r) {
			return true
		}
		if lbl, ok := strings.CutPrefix(r, " ("); ok {
			for k := range len(lbl) {
				if lbl[k] == ')' && fieldPath(t.Elem(), lbl[k+1:]) {
					return true
				}
			}
		}
	case reflect.Map:
		if !strings.HasPrefix(rest, ".") {
			return false
		}
		for k := 1; k <= len(rest); k++ {
			if fieldPath(t.Elem(), rest[k:]) {
				return true
			}
		}
	}
	return false
}

// TestFieldPathOracle: the oracle of FuzzParse tells the fields of the config from other text.
func TestFieldPathOracle(t *testing.T) {
	for path, want := range map[string]bool{
		"vault.lease_ttl":       true,
		"vault.kubernetes.role": true,
		"vault":                 true,
		"deployments":           true,
		"daemon.tokens[0].env":  true,
		"daemon.tls":            true,
		"deployments[3] (prod)": true,
		"deployments[0] (a.b).keys.x.y.collections[2]": true,
		"deployments[0] (p).urls.q0":                   true,
		"deployments[0] (p).consumers.agents":          true,
		"deployments[0] (p).windows[1]":                true,
		"deployments[1] (x) (y).containers[0]":         true,
		"vault.token":                                  false,
		"deployment[0].name":                           false,
		"deployments[0].names":                         false,
		"deployments[a].name":                          false,
		"deployments[0] (p).keys":                      true,
		"deployments[0] (p).grace.x":                   false,
		"open x: no such file":                         false,
		"":                                             false,
	} {
		if got := path != "" && fieldPath(reflect.TypeFor[Config](), "."+path); got != want {
			t.Errorf("fieldPath(%q) = %v, want %v", path, got, want)
		}
	}
}
