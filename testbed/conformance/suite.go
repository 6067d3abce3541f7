package conformance

import (
	"flag"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

// MinCases is the least number of cases Run holds; TestCaseCount keeps the suite from shrinking below it.
const MinCases = 112

// testCase is one fact of ../shared/specs/qdrant.md checked against a node.
type testCase struct {
	name string
	// spec names the section(s) of qdrant.md the case encodes; it is part of the failure message.
	spec string
	run  func(t *testing.T, f *fixture)
}

// group is a set of cases that share how their node is started. When start is nil every case starts
// the nodes it needs itself (f.node is nil) and the cases run in parallel with each other.
type group struct {
	name  string
	start func(t *testing.T, target Target) *fixture
	cases []testCase
}

// fixture is what a case gets: the target, and the group's shared node with its keys when the group has one.
type fixture struct {
	target Target
	node   Node
	keys   keySet
	client *client
}

// groups lists every case of the suite, by the setup they share.
func groups() []group {
	return []group{
		configGroup(),
		layersGroup(),
		envGroup(),
		reloadGroup(),
		authGroup(),
		jwtGroup(),
		restGroup(),
		sameKeyGroup(),
		tlsGroup(),
		persistenceGroup(),
		openGroup(),
		auditGroup(),
		auditFilesGroup(),
	}
}

// Cases lists the names of all cases as "group/case", in the order Run runs them.
func Cases() []string {
	var names []string
	for _, g := range groups() {
		for _, c := range g.cases {
			names = append(names, g.name+"/"+c.name)
		}
	}
	return names
}

// Run runs every case of the suite against target as subtests named "<group>/<case>" and returns how many
// cases actually ran (fewer than len(Cases()) only when -run filters some out).
func Run(t *testing.T, target Target) int {
	var ran atomic.Int64
	for _, g := range groups() {
		t.Run(g.name, func(t *testing.T) {
			var shared *fixture
			if g.start != nil {
				if !anyCaseSelected(t, g) {
					return
				}
				shared = g.start(t, target)
			}
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					ran.Add(1)
					if c.spec != "" {
						t.Logf("spec: qdrant.md %s", c.spec)
					}
					f := shared
					if f == nil {
						t.Parallel()
						f = &fixture{target: target}
					}
					c.run(t, f)
				})
			}
		})
	}
	return int(ran.Load())
}

// anyCaseSelected reports whether -run selects at least one case of g, so a filtered run does not start
// shared nodes for nothing.
func anyCaseSelected(t *testing.T, g group) bool {
	if runFilter() == "" {
		return true
	}
	for _, c := range g.cases {
		if matchesRunFilter(t.Name() + "/" + c.name) {
			return true
		}
	}
	return false
}

// runFilter returns the -test.run pattern, or "" when there is none.
func runFilter() string {
	f := flag.Lookup("test.run")
	if f == nil {
		return ""
	}
	return f.Value.String()
}

// matchesRunFilter reports whether the full subtest name would be selected by -test.run, level by level as
// the testing package does ("/"-separated regular expressions; levels past the pattern match anything).
// On an unparsable pattern it answers true: starting a node too many is harmless.
func matchesRunFilter(name string) bool {
	pattern := runFilter()
	if pattern == "" {
		return true
	}
	levels := strings.Split(pattern, "/")
	elems := strings.Split(name, "/")
	for i, lv := range levels {
		if i >= len(elems) {
			break
		}
		re, err := regexp.Compile(lv)
		if err != nil {
			return true
		}
		if !re.MatchString(elems[i]) {
			return false
		}
	}
	return true
}
