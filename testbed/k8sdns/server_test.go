package k8sdns

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

const ns = "vectors"

// fixture is a namespace as Qdrant's Helm chart leaves it, plus pods and Services that must not be published:
// qdrant-0 is Ready, qdrant-1 has an IP but is not Ready, qdrant-2 has no IP yet, qdrant-3 is being deleted, and
// web-0 claims the headless Service's subdomain without carrying its selector's labels.
func fixture() []runtime.Object {
	sel := map[string]string{"app": "qdrant"}
	pod := func(name, ip string, ready bool, labels map[string]string) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec:       corev1.PodSpec{Hostname: name, Subdomain: "qdrant-headless"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
		}
		if ip != "" {
			p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		return p
	}
	deleting := pod("qdrant-3", "10.244.77.13", true, sel)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
	deleting.Finalizers = []string{"test/keep"}
	return []runtime.Object{
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "qdrant-headless"},
			Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, PublishNotReadyAddresses: true, Selector: sel},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ready-only"},
			Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: sel},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "qdrant"},
			Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}, Selector: sel},
		},
		pod("qdrant-0", "10.244.77.10", true, sel),
		pod("qdrant-1", "10.244.77.11", false, sel),
		pod("qdrant-2", "", false, sel),
		deleting,
		pod("web-0", "10.244.77.20", true, map[string]string{"app": "web"}),
	}
}

// serve starts a server on a free loopback port for the fixture and closes it when the test ends.
func serve(t *testing.T) *Server {
	t.Helper()
	s, err := Serve(t.Context(), "127.0.0.1:0", fake.NewClientset(fixture()...), "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// resolverFor is a Go resolver that sends every query to addr over network ("udp" or "tcp").
func resolverFor(addr, network string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

func TestLookup(t *testing.T) {
	s := serve(t)
	const (
		found = iota
		nxdomain
		refused
	)
	cases := []struct {
		name, host string
		want       int
		ips        []string
	}{
		{"ready peer by search-list name", "qdrant-0.qdrant-headless.vectors.svc.cluster.local.", found, []string{"10.244.77.10"}},
		{"not-ready peer, publishNotReadyAddresses", "qdrant-1.qdrant-headless.vectors.svc.cluster.local.", found, []string{"10.244.77.11"}},
		{"names ignore case", "QDRANT-0.Qdrant-Headless.VECTORS.svc.Cluster.Local.", found, []string{"10.244.77.10"}},
		{"headless service: its pods", "qdrant-headless.vectors.svc.cluster.local.", found, []string{"10.244.77.10", "10.244.77.11"}},
		{"headless service without publishNotReadyAddresses: Ready pods", "ready-only.vectors.svc.cluster.local.", found, []string{"10.244.77.10"}},
		{"ClusterIP service", "qdrant.vectors.svc.cluster.local.", found, []string{"10.96.0.10"}},
		{"pod without IP", "qdrant-2.qdrant-headless.vectors.svc.cluster.local.", nxdomain, nil},
		{"pod being deleted", "qdrant-3.qdrant-headless.vectors.svc.cluster.local.", nxdomain, nil},
		{"pod outside the selector", "web-0.qdrant-headless.vectors.svc.cluster.local.", nxdomain, nil},
		{"pod under a ClusterIP service", "qdrant-0.qdrant.vectors.svc.cluster.local.", nxdomain, nil},
		{"unknown service", "nothing.vectors.svc.cluster.local.", nxdomain, nil},
		{"unknown namespace", "qdrant-0.qdrant-headless.other.svc.cluster.local.", nxdomain, nil},
		{"unknown shape under the domain", "a.b.c.d.e.cluster.local.", nxdomain, nil},
		{"outside the domain", "example.com.", refused, nil},
		{"a suffix that is not the domain", "qdrant.vectors.svc.notcluster.local.", refused, nil},
	}
	for _, network := range []string{"udp", "tcp"} {
		r := resolverFor(s.Addr(), network)
		for _, c := range cases {
			t.Run(network+"/"+c.name, func(t *testing.T) {
				ips, err := r.LookupHost(t.Context(), c.host) // asks for A and AAAA
				var dnsErr *net.DNSError
				switch c.want {
				case found:
					if err != nil {
						t.Fatalf("lookup %s: %v", c.host, err)
					}
					slices.Sort(ips)
					if !slices.Equal(ips, c.ips) {
						t.Fatalf("lookup %s = %v, want %v", c.host, ips, c.ips)
					}
				case nxdomain:
					if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
						t.Fatalf("lookup %s = %v, %v; want not found", c.host, ips, err)
					}
				case refused:
					if !errors.As(err, &dnsErr) || dnsErr.IsNotFound {
						t.Fatalf("lookup %s = %v, %v; want a failed lookup that is not NXDOMAIN", c.host, ips, err)
					}
				}
			})
		}
	}
}

// TestMessages checks the raw replies: codes, the authoritative flag, TTLs and the SOA of negative answers.
func TestMessages(t *testing.T) {
	s := serve(t)
	cases := []struct {
		name      string
		qname     string
		qtype     dnsmessage.Type
		rcode     dnsmessage.RCode
		answers   int
		authority bool // the zone's SOA, and the AA flag
	}{
		{"A of a peer", "qdrant-0.qdrant-headless.vectors.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, 1, false},
		{"AAAA of a peer: empty", "qdrant-0.qdrant-headless.vectors.svc.cluster.local.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, 0, true},
		{"TXT of a service: empty", "qdrant-headless.vectors.svc.cluster.local.", dnsmessage.TypeTXT, dnsmessage.RCodeSuccess, 0, true},
		{"a namespace exists", "vectors.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, 0, true},
		{"the apex exists", "cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, 0, true},
		{"unknown", "nothing.vectors.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, 0, true},
		{"AAAA of unknown", "nothing.vectors.svc.cluster.local.", dnsmessage.TypeAAAA, dnsmessage.RCodeNameError, 0, true},
		{"outside", "example.com.", dnsmessage.TypeA, dnsmessage.RCodeRefused, 0, false},
		{"reverse lookups are outside", "10.77.244.10.in-addr.arpa.", dnsmessage.TypePTR, dnsmessage.RCodeRefused, 0, false},
	}
	for _, network := range []string{"udp", "tcp"} {
		for i, c := range cases {
			t.Run(network+"/"+c.name, func(t *testing.T) {
				id := uint16(100 + i)
				m := exchange(t, network, s.Addr(), id, c.qname, c.qtype)
				if m.ID != id || !m.Response || !m.RecursionDesired || m.Truncated {
					t.Errorf("header = %+v, want id %d, a response echoing RD, not truncated", m.Header, id)
				}
				if len(m.Questions) != 1 || m.Questions[0].Name.String() != c.qname || m.Questions[0].Type != c.qtype {
					t.Errorf("questions = %v, want the one asked", m.Questions)
				}
				if m.RCode != c.rcode {
					t.Errorf("rcode = %v, want %v", m.RCode, c.rcode)
				}
				inZone := c.rcode != dnsmessage.RCodeRefused
				if m.Authoritative != inZone {
					t.Errorf("authoritative = %v, want %v", m.Authoritative, inZone)
				}
				if len(m.Answers) != c.answers {
					t.Fatalf("answers = %v, want %d", m.Answers, c.answers)
				}
				for _, a := range m.Answers {
					if a.Header.Type != dnsmessage.TypeA || a.Header.TTL != 1 || a.Header.Name.String() != c.qname {
						t.Errorf("answer %v, want an A record for the question with TTL 1", a.Header)
					}
				}
				hasSOA := len(m.Authorities) == 1 && m.Authorities[0].Header.Type == dnsmessage.TypeSOA &&
					m.Authorities[0].Header.Name.String() == "cluster.local." &&
					m.Authorities[0].Body.(*dnsmessage.SOAResource).MinTTL == 1
				if hasSOA != c.authority || (!c.authority && len(m.Authorities) != 0) {
					t.Errorf("authorities = %v, want the zone's SOA: %v", m.Authorities, c.authority)
				}
			})
		}
	}
}

// exchange sends one query with RD set and returns the parsed reply.
func exchange(t *testing.T, network, addr string, id uint16, qname string, qtype dnsmessage.Type) dnsmessage.Message {
	t.Helper()
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(qname), Type: qtype, Class: dnsmessage.ClassINET}},
	}
	query, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) // a hang bound, not a speed check
	var reply []byte
	if network == "tcp" {
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(query))), query...)); err != nil {
			t.Fatal(err)
		}
		var size [2]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			t.Fatal(err)
		}
		reply = make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, reply); err != nil {
			t.Fatal(err)
		}
	} else {
		if _, err := c.Write(query); err != nil {
			t.Fatal(err)
		}
		reply = make([]byte, 65535)
		n, err := c.Read(reply)
		if err != nil {
			t.Fatal(err)
		}
		reply = reply[:n]
	}
	var m dnsmessage.Message
	if err := m.Unpack(reply); err != nil {
		t.Fatalf("unpack reply: %v", err)
	}
	return m
}

// TestServeBeforeAddressExists binds an IP no interface carries yet, as the caller binds the gateway IP before the
// CNI bridge exists, then puts the IP on a bridge of the test's own, as the CNI plugin puts the gateway IP on its
// bridge, and resolves through it.
func TestServeBeforeAddressExists(t *testing.T) {
	const (
		link = "rotdnstest0"
		ip   = "192.0.2.53" // TEST-NET-1: never routed, and on a link of our own only
	)
	ipCmd := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return errors.New("ip " + strings.Join(args, " ") + ": " + err.Error() + ": " + string(out))
		}
		return nil
	}
	if exec.Command("ip", "link", "show", "dev", link).Run() == nil { // a crashed run's
		if err := ipCmd("link", "del", "dev", link); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Serve(t.Context(), ip+":0", fake.NewClientset(fixture()...), "cluster.local")
	if err != nil {
		t.Fatalf("serve before the address exists: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := ipCmd("link", "add", link, "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ipCmd("link", "del", "dev", link); err != nil {
			t.Error(err)
		}
	})
	if err := ipCmd("addr", "add", ip+"/32", "dev", link); err != nil {
		t.Fatal(err)
	}
	if err := ipCmd("link", "set", link, "up"); err != nil {
		t.Fatal(err)
	}
	for _, network := range []string{"udp", "tcp"} {
		ips, err := resolverFor(s.Addr(), network).LookupHost(t.Context(), "qdrant-0.qdrant-headless.vectors.svc.cluster.local.")
		if err != nil || !slices.Equal(ips, []string{"10.244.77.10"}) {
			t.Errorf("%s lookup through %s = %v, %v; want 10.244.77.10", network, s.Addr(), ips, err)
		}
	}
}

// TestStops checks that the end of Serve's context stops the server, and Close after it is harmless.
func TestStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Serve(ctx, "127.0.0.1:0", fake.NewClientset(fixture()...), "cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	// an open TCP connection must not keep the server alive
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := resolverFor(s.Addr(), "udp").LookupHost(t.Context(), "qdrant.vectors.svc.cluster.local."); err != nil {
		t.Fatalf("lookup before stop: %v", err)
	}
	cancel()
	if err := s.Close(); err != nil {
		t.Errorf("close after the context ended: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := net.Dial("tcp", s.Addr()); err == nil {
		t.Error("TCP still accepts after stop")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("open connection not closed on stop: %v", err)
	}
}

func TestServeRejects(t *testing.T) {
	cs := fake.NewClientset()
	for _, c := range []struct{ name, addr, domain string }{
		{"no port", "127.0.0.1", "cluster.local"},
		{"empty domain", "127.0.0.1:0", "."},
	} {
		t.Run(c.name, func(t *testing.T) {
			if s, err := Serve(t.Context(), c.addr, cs, c.domain); err == nil {
				s.Close()
				t.Fatalf("Serve(%q, %q) succeeded", c.addr, c.domain)
			}
		})
	}
}
