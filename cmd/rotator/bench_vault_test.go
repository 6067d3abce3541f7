package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/qdrantrotator/rotator/testbed/vaultdev"
)

// BenchmarkVaultRequests counts, with a real file audit device on the Vault dev server, the Vault requests of one
// scheduled rotation (`rotator rotate`, grace 0, the default lease_ttl of 60s) of an N-node deployment, for N = 1, 3
// and 9. Only the rotator's requests count: each run gets a token of its own (the deploy kit's qdrant-rotator
// policy, TTL 1h; its token file is rewritten), and the audit log's request entries are filtered by that token's
// accessor within the log lines the run added. A `rotator status` in the same run is the baseline: what any command
// costs (session, fingerprint secret, journal and key reads). Target: total <= 12 + 4N.
//
// ROTATOR_BENCH_VAULT_NODES (e.g. "1,3") and ROTATOR_BENCH_VAULT_MODES (e.g. "file,env"; default "file") choose the
// sizes and modes; a 1x run of all three sizes takes 3-4 minutes on 2 loaded cores (9 nodes: 18 restarts).
func BenchmarkVaultRequests(b *testing.B) {
	sizes := benchEnvInts(b, "ROTATOR_BENCH_VAULT_NODES", []int{1, 3, 9})
	modes := []string{"file"}
	if v := os.Getenv("ROTATOR_BENCH_VAULT_MODES"); v != "" {
		modes = strings.Split(v, ",")
	}
	for _, mode := range modes {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s/nodes=%d", mode, n), func(b *testing.B) { benchVaultRequests(b, mode, n) })
		}
	}
}

func benchVaultRequests(b *testing.B, mode string, n int) {
	f := newFixture(b, fixtureOpts{nodes: n, mode: mode, grace: "0s"})
	ctx := context.Background()
	auditLog := filepath.Join(b.TempDir(), "audit.log")
	if err := f.vault.EnableFileAudit(ctx, auditLog); err != nil {
		b.Fatal(err)
	}
	// The rotator runs with the deploy kit's policy, as in production (which also proves the policy suffices).
	policy, err := os.ReadFile(filepath.Join("..", "..", "deploy", "vault", "qdrant-rotator.hcl"))
	if err != nil {
		b.Fatal(err)
	}
	if err := f.vault.PutPolicy(ctx, "qdrant-rotator", string(policy)); err != nil {
		b.Fatal(err)
	}
	// The default lease_ttl, as a real deployment has it (the fixture's 3s makes the e2e tests' lease expire fast).
	cfg, err := os.ReadFile(f.config)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(f.config, []byte(strings.Replace(string(cfg), "lease_ttl: 3s", "lease_ttl: 60s", 1)), 0o600); err != nil {
		b.Fatal(err)
	}
	// The first command of all creates the fingerprint secret; the figures are a steady rotator's.
	if code, out := f.rotator("status"); code != exitOK {
		b.Fatalf("status exited %d:\n%s", code, out)
	}
	base := f.countVaultRequests(auditLog, "status")
	var sum vaultCounts
	var each []string
	worst := 0
	for i := 0; i < b.N; i++ {
		c := f.countVaultRequests(auditLog, "rotate")
		sum.add(c)
		worst = max(worst, c.total())
		each = append(each, strconv.Itoa(c.total()))
		f.k1 = f.current().Key // the next round starts from the new key
	}
	target := 12 + 4*n
	total := float64(sum.total()) / float64(b.N)
	verdict := ""
	if worst > target {
		verdict = "  GOAL MISSED"
	}
	fmt.Printf("vault requests per rotation (%s mode, %d nodes, %d rotations: %s; the first creates the journal): mean %.1f, worst %d (target <= 12+4N = %d)%s\n  %s\n  by record: %s\n  baseline, one `rotator status`: %d (%s)\n",
		mode, n, b.N, strings.Join(each, ", "), total, worst, target, verdict, sum.breakdown(b.N), sum.byRecord(b.N), base.total(), base.breakdown(1))
	b.ReportMetric(total, "requests/rotation")
	b.ReportMetric(float64(sum.kind["write"])/float64(b.N), "writes/rotation")
	b.ReportMetric(float64(target), "target")
}

// countVaultRequests runs one rotator command with a token of its own and counts its requests in the audit log.
func (f *fixture) countVaultRequests(auditLog string, command string) vaultCounts {
	f.t.Helper()
	ctx := context.Background()
	token, accessor, err := f.vault.CreateToken(ctx, "rotator-bench", "1h", "qdrant-rotator")
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "token"), []byte(token+"\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	before, err := vaultdev.ReadAudit(auditLog)
	if err != nil {
		f.t.Fatal(err)
	}
	if code, out := f.rotator(command); code != exitOK {
		f.t.Fatalf("%s exited %d:\n%s", command, code, out)
	}
	after, err := vaultdev.ReadAudit(auditLog)
	if err != nil {
		f.t.Fatal(err)
	}
	c := vaultCounts{kind: map[string]int{}, record: map[string]int{}}
	for _, e := range after[len(before):] {
		if e.Type == "request" && e.Auth.Accessor == accessor {
			c.count(e.Request.Operation, e.Request.Path)
		}
	}
	return c
}

// vaultCounts are a command's Vault requests by kind (read, write, metadata read, ...) and by record.
type vaultCounts struct {
	kind   map[string]int
	record map[string]int // "journal read", "admin write", ...
}

// vaultKinds are the kinds in print order.
var vaultKinds = []string{"read", "write", "metadata read", "metadata write", "delete/undelete", "login/token", "other"}

// count files one request: its path is <mount>/<data|metadata|delete|undelete|destroy>/<prefix>/<record> for KV v2.
func (c *vaultCounts) count(op, path string) {
	parts := strings.SplitN(path, "/", 3)
	kind := "other"
	switch {
	case strings.HasPrefix(path, "auth/"):
		kind = "login/token"
	case len(parts) == 3 && parts[1] == "data" && op == "read":
		kind = "read"
	case len(parts) == 3 && parts[1] == "data":
		kind = "write" // create/update, with check-and-set
	case len(parts) == 3 && parts[1] == "metadata" && op == "read":
		kind = "metadata read"
	case len(parts) == 3 && parts[1] == "metadata":
		kind = "metadata write"
	case len(parts) == 3 && (parts[1] == "delete" || parts[1] == "undelete" || parts[1] == "destroy"):
		kind = "delete/undelete"
	}
	c.kind[kind]++
	record := path // auth/..., sys/...
	switch {
	case kind == "login/token" || kind == "other":
	case strings.Contains(path, "/rotator/journal/"):
		record = "journal"
	case strings.HasSuffix(path, "/rotator/fingerprint"):
		record = "fingerprint"
	default:
		record = path[strings.LastIndex(path, "/")+1:] // admin, read-only, a named key
	}
	c.record[record+" "+kind]++
}

func (c *vaultCounts) add(o vaultCounts) {
	if c.kind == nil {
		c.kind, c.record = map[string]int{}, map[string]int{}
	}
	for k, v := range o.kind {
		c.kind[k] += v
	}
	for k, v := range o.record {
		c.record[k] += v
	}
}

func (c vaultCounts) total() int {
	t := 0
	for _, v := range c.kind {
		t += v
	}
	return t
}

func (c vaultCounts) breakdown(runs int) string {
	var parts []string
	for _, k := range vaultKinds {
		parts = append(parts, fmt.Sprintf("%s %s", perRun(c.kind[k], runs), k))
	}
	return strings.Join(parts, ", ")
}

func (c vaultCounts) byRecord(runs int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c.record)) {
		parts = append(parts, fmt.Sprintf("%s %s", k, perRun(c.record[k], runs)))
	}
	return strings.Join(parts, ", ")
}

func perRun(n, runs int) string {
	if n%runs == 0 {
		return strconv.Itoa(n / runs)
	}
	return strconv.FormatFloat(float64(n)/float64(runs), 'f', 1, 64)
}
