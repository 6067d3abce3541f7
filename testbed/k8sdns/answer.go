package k8sdns

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// udpPayload is the largest UDP reply sent to a client that announces no EDNS0 size (RFC 1035), and the size this
// server announces in its own EDNS0 record.
const (
	udpPayload     = 512
	ednsPayloadOut = 1232
)

// answer makes the reply to one query message, or nil when the message gets none (unparsable, or not a query).
// A UDP reply too large for the client is sent empty with TC set, so the client asks again over TCP.
func (s *Server) answer(ctx context.Context, query []byte, udp bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	reply := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		reply.RCode = dnsmessage.RCodeFormatError
		return pack(reply, nil, result{}, false, udpPayload)
	}
	q := qs[0]
	edns, limit := false, udpPayload
	if p.SkipAllAnswers() == nil && p.SkipAllAuthorities() == nil {
		for {
			ah, err := p.AdditionalHeader()
			if err != nil {
				break
			}
			if ah.Type == dnsmessage.TypeOPT {
				edns, limit = true, max(int(ah.Class), udpPayload) // an OPT record's class is the client's UDP size
			}
			if p.SkipAdditional() != nil {
				break
			}
		}
	}
	if !udp {
		limit = 65535
	}
	if h.OpCode != 0 {
		reply.RCode = dnsmessage.RCodeNotImplemented
		return pack(reply, &q, result{}, edns, limit)
	}
	res := s.resolver.resolve(ctx, q)
	reply.RCode, reply.Authoritative = res.rcode, res.inZone
	return pack(reply, &q, res, edns, limit)
}

// pack builds the reply: the question, res's A records when q asks for them, and the zone's SOA in the authority
// section when an answer from the zone is empty (negative caching, RFC 2308).
func pack(h dnsmessage.Header, q *dnsmessage.Question, res result, edns bool, limit int) []byte {
	msg, err := build(h, q, res, edns)
	if err == nil && len(msg) > limit {
		h.Truncated = true
		msg, err = build(h, q, result{}, edns)
	}
	if err != nil { // a parsed question and records made here: not expected, but answer rather than go silent
		msg, _ = build(dnsmessage.Header{ID: h.ID, Response: true, RCode: dnsmessage.RCodeServerFailure}, nil, result{}, false)
	}
	return msg
}

func build(h dnsmessage.Header, q *dnsmessage.Question, res result, edns bool) ([]byte, error) {
	b := dnsmessage.NewBuilder(nil, h)
	b.EnableCompression()
	if q == nil {
		return b.Finish()
	}
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(*q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	answered := false
	if !h.Truncated && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL) {
		for _, ip := range res.ips {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: ttl()}
			if err := b.AResource(rh, dnsmessage.AResource{A: ip.As4()}); err != nil {
				return nil, err
			}
			answered = true
		}
	}
	if err := b.StartAuthorities(); err != nil {
		return nil, err
	}
	if res.inZone && !answered && !h.Truncated {
		if err := soa(&b, res.zone); err != nil {
			return nil, err
		}
	}
	if err := b.StartAdditionals(); err != nil {
		return nil, err
	}
	if edns {
		var rh dnsmessage.ResourceHeader
		if err := rh.SetEDNS0(ednsPayloadOut, dnsmessage.RCodeSuccess, false); err != nil {
			return nil, err
		}
		if err := b.OPTResource(rh, dnsmessage.OPTResource{}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// soa adds the zone's start of authority, whose minimum TTL tells resolvers to cache a negative answer for TTL.
func soa(b *dnsmessage.Builder, zone string) error {
	name, err := dnsmessage.NewName(zone + ".")
	if err != nil {
		return err
	}
	ns, err := dnsmessage.NewName("ns.dns." + zone + ".")
	if err != nil {
		return err
	}
	mbox, err := dnsmessage.NewName("hostmaster." + zone + ".")
	if err != nil {
		return err
	}
	rh := dnsmessage.ResourceHeader{Name: name, Type: dnsmessage.TypeSOA, Class: dnsmessage.ClassINET, TTL: ttl()}
	return b.SOAResource(rh, dnsmessage.SOAResource{
		NS: ns, MBox: mbox, Serial: 1, Refresh: 7200, Retry: 1800, Expire: 86400, MinTTL: ttl(),
	})
}

func ttl() uint32 { return uint32(TTL.Seconds()) }

// result is what a name is: whether it lies in the zone, the response code, and its IPv4 addresses.
type result struct {
	rcode  dnsmessage.RCode
	inZone bool
	zone   string
	ips    []netip.Addr
}

// resolver looks names of the zone up in the API server.
type resolver struct {
	cs   kubernetes.Interface
	zone string // lower case, no leading or trailing dot
}

// resolve answers q. Names outside the zone are REFUSED; inside it, the zone's apex, "svc" and each "NS.svc" exist
// without records (CoreDNS answers the same for them), "SVC.NS.svc" and "HOSTNAME.SUBDOMAIN.NS.svc" are looked up,
// and every other name is NXDOMAIN. A failed API read is SERVFAIL.
func (r resolver) resolve(ctx context.Context, q dnsmessage.Question) result {
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	if q.Class != dnsmessage.ClassINET && q.Class != dnsmessage.ClassANY {
		return result{rcode: dnsmessage.RCodeRefused}
	}
	if name != r.zone && !strings.HasSuffix(name, "."+r.zone) {
		return result{rcode: dnsmessage.RCodeRefused}
	}
	res := result{rcode: dnsmessage.RCodeSuccess, inZone: true, zone: r.zone}
	if name == r.zone {
		return res
	}
	l := strings.Split(strings.TrimSuffix(name, "."+r.zone), ".")
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var (
		ips   []netip.Addr
		found bool
		err   error
	)
	switch {
	case len(l) == 1 && l[0] == "svc", len(l) == 2 && l[1] == "svc":
		return res
	case len(l) == 3 && l[2] == "svc":
		ips, found, err = r.service(ctx, l[1], l[0])
	case len(l) == 4 && l[3] == "svc":
		ips, found, err = r.podHost(ctx, l[2], l[1], l[0])
	}
	switch {
	case err != nil:
		res.rcode = dnsmessage.RCodeServerFailure
	case !found:
		res.rcode = dnsmessage.RCodeNameError
	default:
		res.ips = ips
	}
	return res
}

// service gives the addresses of Service ns/name: its ClusterIPs, or for a headless Service the IPs of the pods it
// publishes; none for an ExternalName Service (never followed: nothing is forwarded).
func (r resolver) service(ctx context.Context, ns, name string) ([]netip.Addr, bool, error) {
	svc, found, err := r.getService(ctx, ns, name)
	if err != nil || !found {
		return nil, found, err
	}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return nil, true, nil
	case svc.Spec.ClusterIP != corev1.ClusterIPNone:
		return ipv4s(append([]string{svc.Spec.ClusterIP}, svc.Spec.ClusterIPs...)), true, nil
	}
	pods, err := r.published(ctx, svc)
	if err != nil {
		return nil, false, err
	}
	var ips []netip.Addr
	for _, p := range pods {
		ips = append(ips, podIPs(p)...)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	return slices.Compact(ips), true, nil
}

// podHost gives the IP of the pod that headless Service ns/subdomain publishes under hostname: a pod with
// spec.hostname HOSTNAME and spec.subdomain SUBDOMAIN (a StatefulSet's pods have their name and the serviceName).
func (r resolver) podHost(ctx context.Context, ns, subdomain, hostname string) ([]netip.Addr, bool, error) {
	svc, found, err := r.getService(ctx, ns, subdomain)
	if err != nil || !found || svc.Spec.ClusterIP != corev1.ClusterIPNone {
		return nil, false, err
	}
	pods, err := r.published(ctx, svc)
	if err != nil {
		return nil, false, err
	}
	var ips []netip.Addr
	for _, p := range pods {
		if p.Spec.Hostname == hostname && p.Spec.Subdomain == svc.Name {
			ips = append(ips, podIPs(p)...)
		}
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	ips = slices.Compact(ips)
	return ips, len(ips) > 0, nil
}

func (r resolver) getService(ctx context.Context, ns, name string) (*corev1.Service, bool, error) {
	svc, err := r.cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return svc, true, nil
}

// published lists the pods svc's endpoints would hold, as the EndpointSlice controller picks them: selected by
// svc's selector (none without one), with an IP, not terminal and not being deleted, and Ready unless svc sets
// publishNotReadyAddresses (as Qdrant's headless Service does, so peers find each other before they are Ready).
func (r resolver) published(ctx context.Context, svc *corev1.Service) ([]corev1.Pod, error) {
	if len(svc.Spec.Selector) == 0 {
		return nil, nil
	}
	list, err := r.cs.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String(),
	})
	if err != nil {
		return nil, err
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if !svc.Spec.PublishNotReadyAddresses && !ready(p) {
			continue
		}
		pods = append(pods, p)
	}
	return pods, nil
}

func ready(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podIPs gives a pod's IPv4 addresses.
func podIPs(p corev1.Pod) []netip.Addr {
	all := []string{p.Status.PodIP}
	for _, ip := range p.Status.PodIPs {
		all = append(all, ip.IP)
	}
	return ipv4s(all)
}

// ipv4s parses the IPv4 addresses among ss, without repeats; A records carry nothing else.
func ipv4s(ss []string) []netip.Addr {
	var ips []netip.Addr
	for _, s := range ss {
		if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() && !slices.Contains(ips, ip) {
			ips = append(ips, ip)
		}
	}
	return ips
}
