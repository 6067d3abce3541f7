package posture

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// safeNode is a node that passes every node check.
func safeNode(name string) NodeFacts {
	return NodeFacts{Node: name, APIKey: true, KeySource: "file", TLS: true, AuditLog: true,
		Ports:      []PortBinding{{6333, "127.0.0.1", 16333}, {6334, "127.0.0.1", 16334}},
		ConfigFile: &FileFacts{Path: "/etc/q/local.yaml", Mode: 0o600, UID: 1000, GID: 1000, ReadableByContainer: true, ContainerUser: "1000:1000"}}
}

func checks(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Check+"/"+f.Severity.String())
	}
	return out
}

func TestNodeChecks(t *testing.T) {
	cases := []struct {
		name   string
		change func(*NodeFacts)
		want   []string
	}{
		{"safe", func(*NodeFacts) {}, nil},
		{"no api key", func(n *NodeFacts) { n.APIKey = false }, []string{CheckNoAPIKey + "/high"}},
		{"rest on 0.0.0.0 without tls", func(n *NodeFacts) { n.TLS = false; n.Ports[0].HostIP = "0.0.0.0" },
			[]string{CheckPublished + "/medium", CheckTLSOff + "/high"}},
		{"rest on every address, tls on", func(n *NodeFacts) { n.Ports[0].HostIP = "" }, []string{CheckPublished + "/medium"}},
		{"grpc on ::", func(n *NodeFacts) { n.Ports[1].HostIP = "::" }, []string{CheckPublished + "/medium"}},
		{"rest on a lan address", func(n *NodeFacts) { n.Ports[0].HostIP = "10.0.0.5" }, []string{CheckPublished + "/medium"}},
		{"tls off on loopback only", func(n *NodeFacts) { n.TLS = false }, nil},
		{"ipv6 loopback", func(n *NodeFacts) { n.Ports[0].HostIP = "::1" }, nil},
		{"p2p published", func(n *NodeFacts) { n.Ports = append(n.Ports, PortBinding{6335, "0.0.0.0", 6335}) }, []string{CheckPublished + "/high"}},
		{"other port published", func(n *NodeFacts) { n.Ports = append(n.Ports, PortBinding{8080, "0.0.0.0", 80}) }, nil},
		{"env keys", func(n *NodeFacts) { n.EnvKeys = []string{"QDRANT__SERVICE__API_KEY"}; n.ConfigFile = nil }, []string{CheckEnvKeys + "/medium"}},
		{"file 0644", func(n *NodeFacts) { n.ConfigFile.Mode = 0o644 }, []string{CheckFileOthers + "/high"}},
		{"file unreadable by the container", func(n *NodeFacts) { n.ConfigFile.ReadableByContainer = false },
			[]string{CheckFileUnreadable + "/high"}},
		{"audit log off", func(n *NodeFacts) { n.AuditLog = false }, []string{CheckAuditLogOff + "/low"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := safeNode("q0")
			tc.change(&n)
			got := checks(Review(Facts{Deployments: []DeploymentFacts{{Name: "prod", Reviewed: true, Nodes: []NodeFacts{n}, Admin: KeyFacts{Fingerprint: "fp:1"}}}}))
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("findings %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDeploymentChecks(t *testing.T) {
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	base := func() DeploymentFacts {
		return DeploymentFacts{Name: "prod", Reviewed: true, MaxAge: 24 * time.Hour, Admin: KeyFacts{"fp:a", now.Add(-time.Hour)}}
	}
	cases := []struct {
		name   string
		change func(*DeploymentFacts)
		want   []string
	}{
		{"fresh", func(*DeploymentFacts) {}, nil},
		{"open node", func(d *DeploymentFacts) { d.Open = []string{"q1"} }, []string{CheckOpen + "/high"}},
		{"old key", func(d *DeploymentFacts) { d.Admin.Since = now.Add(-48 * time.Hour) }, []string{CheckKeyAge + "/medium"}},
		{"old key, no max_age", func(d *DeploymentFacts) { d.Admin.Since = now.Add(-48 * time.Hour); d.MaxAge = 0 }, nil},
		{"jwt without exp", func(d *DeploymentFacts) { d.Named = []NamedKeyFacts{{Name: "search", JWT: true, Fingerprint: "fp:j"}} }, []string{CheckJWTNoExp + "/medium"}},
		{"jwt with exp", func(d *DeploymentFacts) {
			d.Named = []NamedKeyFacts{{Name: "search", JWT: true, Fingerprint: "fp:j", Expires: now.Add(time.Hour)}}
		}, nil},
		{"read-only consumer, no read-only key", func(d *DeploymentFacts) { d.ReadOnlyConsumer = true }, []string{CheckNoReadOnlyKey + "/medium"}},
		{"read-only consumer with its key", func(d *DeploymentFacts) { d.ReadOnlyConsumer = true; d.ReadOnly.Fingerprint = "fp:r" }, nil},
		{"not gathered", func(d *DeploymentFacts) { d.Unknown = []string{"node q0: no such container"} }, []string{CheckNotGathered + "/low"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := base()
			tc.change(&d)
			got := checks(Review(Facts{Now: now, Deployments: []DeploymentFacts{d}}))
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("findings %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDuplicateKeys(t *testing.T) {
	deps := []DeploymentFacts{
		{Name: "prod", Reviewed: true, Admin: KeyFacts{Fingerprint: "fp:same"}},
		{Name: "staging", Reviewed: false, ReadOnly: KeyFacts{Fingerprint: "fp:same"}, Admin: KeyFacts{Fingerprint: "fp:other"}},
		{Name: "dev", Reviewed: true, Admin: KeyFacts{Fingerprint: "fp:dev"}},
	}
	got := Review(Facts{Deployments: deps})
	if len(got) != 1 || got[0].Check != CheckDuplicateKey || got[0].Deployment != "prod" || got[0].Severity != High {
		t.Fatalf("findings %+v, want one duplicate-key finding for prod (staging is not reviewed)", got)
	}
	if !strings.Contains(got[0].Evidence, "fp:same") || !strings.Contains(got[0].Evidence, "staging (read-only)") {
		t.Fatalf("evidence %q names neither the fingerprint nor the other deployment", got[0].Evidence)
	}
	if got[0].Practice != practiceEnvs {
		t.Fatalf("practice %q", got[0].Practice)
	}
}

func TestConsumerPolicies(t *testing.T) {
	one := `# comment path "secret/data/*" {
path "secret/data/qdrant/deployments/{{identity.entity.metadata.qdrant_deployment}}/read-only" {
  capabilities = ["read"]
}`
	two := one + "\npath \"secret/data/qdrant/deployments/prod/admin\" {\n capabilities = [\"read\"]\n}\n"
	glob := "path \"secret/data/qdrant/*\" {\n capabilities = [\"read\"]\n}\n"
	cases := []struct {
		name string
		p    PolicyFacts
		want []string
	}{
		{"one path", PolicyFacts{Name: "ro", Paths: PolicyPaths(one)}, nil},
		{"two paths", PolicyFacts{Name: "ro", Paths: PolicyPaths(two)}, []string{CheckPolicyBroad + "/medium"}},
		{"a glob", PolicyFacts{Name: "ro", Paths: PolicyPaths(glob)}, []string{CheckPolicyBroad + "/medium"}},
		{"denied", PolicyFacts{Name: "ro", Error: "permission denied"}, []string{CheckPolicyUnreadable + "/low"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := checks(Review(Facts{Policies: []PolicyFacts{tc.p}}))
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("findings %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAPIExposed(t *testing.T) {
	cases := []struct {
		api  APIFacts
		want int
	}{
		{APIFacts{Listen: "127.0.0.1:8080"}, 0},
		{APIFacts{Listen: "[::1]:8080"}, 0},
		{APIFacts{Listen: "0.0.0.0:8080"}, 1},
		{APIFacts{Listen: ":8080"}, 1},
		{APIFacts{Listen: "0.0.0.0:8080", TLS: true}, 0},
	}
	for _, tc := range cases {
		if got := Review(Facts{API: &tc.api}); len(got) != tc.want {
			t.Errorf("%+v: %d findings, want %d", tc.api, len(got), tc.want)
		}
	}
}

func TestParseSeverity(t *testing.T) {
	for _, name := range []string{"low", "medium", "high"} {
		s, err := ParseSeverity(name)
		if err != nil || s.String() != name {
			t.Fatalf("ParseSeverity(%q) = %v, %v", name, s, err)
		}
	}
	if _, err := ParseSeverity("critical"); err == nil {
		t.Fatal("critical accepted")
	}
	if Worst(nil) != 0 || Worst([]Finding{{Severity: Low}, {Severity: High}, {Severity: Medium}}) != High {
		t.Fatal("Worst")
	}
}

// fakeKeys is a KeySource with function fields.
type fakeKeys struct {
	status func() (rotation.Status, error)
	verify func() (rotation.Verification, error)
}

func (f fakeKeys) Status(context.Context) (rotation.Status, error) { return f.status() }
func (f fakeKeys) NamedKeys(context.Context) ([]rotation.NamedKeyState, error) {
	return nil, nil
}
func (f fakeKeys) Verify(context.Context) (rotation.Verification, error) { return f.verify() }

type fakeNode struct {
	name  string
	facts func() (NodeFacts, error)
}

func (f fakeNode) Name() string                                              { return f.name }
func (f fakeNode) Facts(context.Context) (NodeFacts, error)                  { return f.facts() }
func (f fakePolicies) Policy(_ context.Context, name string) (string, error) { return f(name) }

type fakePolicies func(string) (string, error)

// TestGather: the open check's never-issued answers count, drift does not; facts that cannot be gathered become
// low findings, a denied policy read too, and nothing stops the audit.
func TestGather(t *testing.T) {
	keys := fakeKeys{
		status: func() (rotation.Status, error) { return rotation.Status{Fingerprint: "fp:a"}, nil },
		verify: func() (rotation.Verification, error) {
			return rotation.Verification{Nodes: []rotation.NodeCheck{
				{Node: "q0", Slot: rotation.SlotAdmin, Accepted: false},
				{Node: "q0", Slot: rotation.SlotNone, Accepted: true},
				{Node: "q1", Slot: rotation.SlotNone, Accepted: false},
			}}, rotation.ErrDrift
		},
	}
	good := fakeNode{"q1", func() (NodeFacts, error) { return safeNode("q1"), nil }}
	bad := fakeNode{"q2", func() (NodeFacts, error) { return NodeFacts{}, errors.New("no such container") }}
	f := Gather(context.Background(), Scope{
		Targets: []Target{{Deployment: "prod", Keys: keys, Nodes: []NodeSource{good, bad}, Review: true},
			{Deployment: "staging", Review: true, Err: errors.New("no container has label app=q")}},
		Policies: fakePolicies(func(name string) (string, error) {
			if name == "missing" {
				return "", nil
			}
			return "", errors.New("permission denied")
		}),
		PolicyNames: []string{"qdrant-consumer-admin", "missing"},
	})
	got := checks(Review(f))
	want := []string{CheckPolicyUnreadable + "/low", CheckNotGathered + "/low", CheckOpen + "/high", CheckNotGathered + "/low"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("findings %v, want %v", got, want)
	}
}
