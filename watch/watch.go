// Package watch reads Qdrant's audit log (POST /audit/logs, Qdrant >= 1.17) of each node incrementally by time and
// turns the refused requests it shows into signals: a count per node and client address, an alert when one address
// is refused too often within a window (a brute-force or leaked-key probe), and the stragglers of a promotion
// (addresses refused since the old key was dropped: clients still holding the retired key). It declares the small
// interfaces it needs (AuditSource, KeySource) and imports no SDK.
package watch

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// ErrAuditOff: the node's audit log is off (Qdrant's 400 "Audit logging is not enabled" or "not configured").
var ErrAuditOff = errors.New("audit logging is off on the node")

// Entry is one line of a node's audit log (fields Qdrant omits are "").
type Entry struct {
	Time     time.Time `json:"timestamp"`
	API      string    `json:"api,omitempty"`
	Method   string    `json:"method,omitempty"`
	AuthType string    `json:"auth_type,omitempty"`
	Remote   string    `json:"remote,omitempty"`
	Result   string    `json:"result"`
	Error    string    `json:"error,omitempty"`
	// TracingID is the request's x-request-id (or x-tracing-id, traceparent).
	TracingID string `json:"tracing_id,omitempty"`
}

// Denied says the node refused the request.
func (e Entry) Denied() bool { return e.Result == "denied" }

// wrongKey says the request was refused for a key (or JWT) the node does not hold: what a client still sending a
// retired key gets. A request without any credential, or a read-only key on a write, is not that.
func (e Entry) wrongKey() bool { return e.Denied() && strings.Contains(e.Error, "Invalid API key") }

// AuditSource reads one node's audit log (qdrantctl.Node): entries in [from, to) whose fields equal filters, newest
// first, at most limit; ErrAuditOff when the log is off.
type AuditSource interface {
	Name() string
	AuditLog(ctx context.Context, admin rotation.Key, from, to time.Time, limit int, filters map[string]string) ([]Entry, error)
}

// KeySource gives a deployment's current admin key (vaultsync.Store).
type KeySource interface {
	ReadCurrent(ctx context.Context, deployment string, slot rotation.Slot) (rotation.KeyRecord, error)
}

// Target is one deployment to watch.
type Target struct {
	Deployment string
	Nodes      []AuditSource
	// Cluster: the nodes are peers of one cluster, whose POST /audit/logs merges every peer's entries; one node is
	// read (the first that answers) and its entries are counted under the node name ClusterNode.
	Cluster bool
}

// ClusterNode is the node label of a cluster's merged entries.
const ClusterNode = "cluster"

// Options configure a Watcher.
type Options struct {
	Keys   KeySource
	Clock  rotation.Clock
	Logger *slog.Logger
	// Threshold and Window: an alert when one address is refused more than Threshold times within Window (by the
	// entries' own timestamps).
	Threshold int
	Window    time.Duration
	// Lag is how far behind now each read stops, as Qdrant writes its log a little behind the request (default 2s).
	Lag time.Duration
	// Overlap is how far before the last entry seen each read starts again (default 1m); what was seen is not
	// counted twice.
	Overlap time.Duration
	// Limit is the entries asked for per call (default 1000; Qdrant allows 1..10000).
	Limit int
	// Ignore leaves out entries of the rotator's own requests (those marked with the rotator's request tag: its open check sends a key
	// never issued).
	Ignore func(Entry) bool
	// Hooks receive what the watcher finds; each may be nil.
	Denied     func(deployment, node string, n int)
	Burst      func(Burst)
	Stragglers func(deployment string, p Promotion, list []Straggler, at time.Time)
}

// Burst is one address refused more than the threshold within the window.
type Burst struct {
	Deployment string        `json:"deployment"`
	Node       string        `json:"node"`
	Address    string        `json:"address"`
	Count      int           `json:"count"`
	Window     time.Duration `json:"-"`
	Time       time.Time     `json:"time"`
}

// Straggler is a client address refused for a wrong key since the last promotion.
type Straggler struct {
	Address  string    `json:"address"`
	Node     string    `json:"node"`
	Denied   int       `json:"denied"`
	LastSeen time.Time `json:"last_seen"`
}

// Promotion is the last completed rotation of a deployment: when the old key was dropped, and by which run.
type Promotion struct {
	RunID string    `json:"run_id"`
	At    time.Time `json:"at"`
}

// AddressCount is the refused requests of one address at one node since the watcher started.
type AddressCount struct {
	Node    string `json:"node"`
	Address string `json:"address"`
	Denied  int    `json:"denied"`
}

// View is what the watcher knows of one deployment.
type View struct {
	Promotion  *Promotion     `json:"promotion,omitempty"`
	Stragglers []Straggler    `json:"stragglers"`
	Denied     []AddressCount `json:"denied_by_address,omitempty"`
	// AuditOff are the nodes whose audit log is off: nothing is watched there.
	AuditOff []string `json:"audit_log_off,omitempty"`
}

// Watcher watches the audit logs of several deployments. Poll reads every node once; Run polls on an interval.
type Watcher struct {
	opt  Options
	deps map[string]*deployment

	mu sync.Mutex // guards every deployment's state
}

type deployment struct {
	t     Target
	nodes map[string]*cursor // by node name (ClusterNode for a cluster)

	denied    map[[2]string]int // [node, address] -> refused requests seen
	recent    []refusal         // the last wrong-key refusals, for a promotion noted after they were read
	promo     *Promotion
	straggler map[[2]string]*Straggler
	off       map[string]bool
	windows   map[[2]string]*window
}

// refusal is one wrong-key refusal of an address at a node.
type refusal struct {
	node, addr string
	at         time.Time
}

// cursor is how far one node's log has been read.
type cursor struct {
	last     time.Time            // the newest entry seen
	seen     map[string]seenEntry // entries at or after last-Overlap, by identity
	failures int
}

// seenEntry is how many times identical entries were seen, and their time.
type seenEntry struct {
	n  int
	at time.Time
}

// window holds an address's refusals within the alert window, oldest first; alerted until it falls back.
type window struct {
	times   []time.Time
	alerted bool
}

// maxRecent bounds the wrong-key refusals kept to find stragglers of a promotion noted after they were read.
const maxRecent = 10000

// New returns a Watcher of targets; reading starts at the first poll's time (older entries are not counted).
func New(opt Options, targets []Target) *Watcher {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Lag <= 0 {
		opt.Lag = 2 * time.Second
	}
	if opt.Overlap <= 0 {
		opt.Overlap = time.Minute
	}
	if opt.Limit <= 0 || opt.Limit > 10000 {
		opt.Limit = 1000
	}
	w := &Watcher{opt: opt, deps: map[string]*deployment{}}
	for _, t := range targets {
		w.deps[t.Deployment] = &deployment{t: t, nodes: map[string]*cursor{}, denied: map[[2]string]int{},
			straggler: map[[2]string]*Straggler{}, off: map[string]bool{}, windows: map[[2]string]*window{}}
	}
	return w
}

// Run polls every interval (on the injected clock) until ctx ends.
func (w *Watcher) Run(ctx context.Context, interval time.Duration) {
	for {
		w.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-w.opt.Clock.After(interval):
		}
	}
}

// Poll reads each deployment's nodes once. A node that cannot be read now (restarting, a cluster peer down: Qdrant
// then fails the merged read) is read again at the next poll from where it stood; nothing is alarmed.
func (w *Watcher) Poll(ctx context.Context) {
	for _, name := range slices.Sorted(maps.Keys(w.deps)) {
		d := w.deps[name]
		rec, err := w.opt.Keys.ReadCurrent(ctx, name, rotation.SlotAdmin)
		if err != nil {
			w.opt.Logger.Debug("audit log watch: no admin key now; trying again at the next poll", "deployment", name, "error", err)
			continue
		}
		if d.t.Cluster {
			for _, n := range d.t.Nodes {
				if w.pollNode(ctx, d, n, ClusterNode, rec.Key) {
					break
				}
			}
			continue
		}
		for _, n := range d.t.Nodes {
			w.pollNode(ctx, d, n, n.Name(), rec.Key)
		}
	}
}

// pollNode reads the entries of one node newer than its cursor (less the overlap) and up to now less the lag, and
// counts the new ones. It says whether the read succeeded.
func (w *Watcher) pollNode(ctx context.Context, d *deployment, src AuditSource, node string, key rotation.Key) bool {
	now := w.opt.Clock.Now()
	to := now.Add(-w.opt.Lag)
	w.mu.Lock()
	c := d.nodes[node]
	if c == nil {
		c = &cursor{last: to, seen: map[string]seenEntry{}}
		d.nodes[node] = c
	}
	from := c.last.Add(-w.opt.Overlap)
	w.mu.Unlock()
	if !to.After(from) {
		return true
	}
	var all []Entry
	for upper, page := to, 0; ; page++ {
		got, err := src.AuditLog(ctx, key, from, upper, w.opt.Limit, map[string]string{"result": "denied"})
		if err != nil {
			w.failed(d, src.Name(), node, c, err)
			return false
		}
		all = append(all, got...)
		if len(got) < w.opt.Limit || page == 20 {
			break
		}
		oldest := got[0].Time
		for _, e := range got {
			if e.Time.Before(oldest) {
				oldest = e.Time
			}
		}
		if !oldest.After(from) {
			break
		}
		upper = oldest // the next page: older entries (to is exclusive)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if d.off[src.Name()] {
		w.opt.Logger.Info("audit log watch: the node's audit log answers again", "deployment", d.t.Deployment, "node", src.Name())
		delete(d.off, src.Name())
	}
	c.failures = 0
	fresh := c.absorb(all, w.opt.Overlap)
	w.count(d, node, fresh)
	return true
}

// absorb returns the entries not seen before (identical entries counted as many times as they occur) and moves the
// cursor to the newest entry.
func (c *cursor) absorb(entries []Entry, overlap time.Duration) []Entry {
	now := map[string]seenEntry{}
	var fresh []Entry
	// Oldest first, so the counts and windows see time moving forward.
	slices.SortStableFunc(entries, func(a, b Entry) int { return a.Time.Compare(b.Time) })
	for _, e := range entries {
		id := identity(e)
		now[id] = seenEntry{n: now[id].n + 1, at: e.Time}
		if now[id].n > c.seen[id].n {
			fresh = append(fresh, e)
		}
		if e.Time.After(c.last) {
			c.last = e.Time
		}
	}
	for id, e := range now {
		if e.n > c.seen[id].n {
			c.seen[id] = e
		}
	}
	floor := c.last.Add(-overlap)
	for id, e := range c.seen {
		if e.at.Before(floor) {
			delete(c.seen, id)
		}
	}
	return fresh
}

func identity(e Entry) string {
	return strings.Join([]string{e.Time.UTC().Format(time.RFC3339Nano), e.API, e.Method, e.AuthType, e.Remote, e.Result, e.Error, e.TracingID}, "|")
}

// failed records a read that did not work: once per node for an audit log that is off, else quietly (a restart or
// a peer down passes; a node that stays unreadable is logged once after a while).
func (w *Watcher) failed(d *deployment, name, node string, c *cursor, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if errors.Is(err, ErrAuditOff) {
		if !d.off[name] {
			d.off[name] = true
			w.opt.Logger.Warn("audit log watch: the node's audit log is off, so refused requests cannot be watched there "+
				"(the security review reports it: qdrant_audit_log_disabled); set audit.enabled: true",
				"deployment", d.t.Deployment, "node", name)
		}
		return
	}
	c.failures++
	if c.failures == 20 {
		w.opt.Logger.Warn("audit log watch: the node's audit log could not be read at the last 20 polls; still trying",
			"deployment", d.t.Deployment, "node", node, "error", err)
	} else {
		w.opt.Logger.Debug("audit log watch: read failed; trying again at the next poll", "deployment", d.t.Deployment, "node", node, "error", err)
	}
}

// count adds the new entries of a node to the counts, the alert windows and the stragglers (w.mu held).
func (w *Watcher) count(d *deployment, node string, fresh []Entry) {
	dep := d.t.Deployment
	n := 0
	var bursts []Burst
	stragglersBefore := d.stragglerSet()
	for _, e := range fresh {
		if !e.Denied() || (w.opt.Ignore != nil && w.opt.Ignore(e)) {
			continue
		}
		n++
		addr := address(e)
		k := [2]string{node, addr}
		d.denied[k]++
		if b, ok := d.observe(k, e.Time, w.opt.Threshold, w.opt.Window); ok {
			bursts = append(bursts, Burst{Deployment: dep, Node: node, Address: addr, Count: b, Window: w.opt.Window, Time: e.Time})
		}
		if e.wrongKey() {
			d.recent = append(d.recent, refusal{node: node, addr: addr, at: e.Time})
			if len(d.recent) > maxRecent {
				d.recent = slices.Delete(d.recent, 0, len(d.recent)-maxRecent)
			}
			if d.promo != nil && !e.Time.Before(d.promo.At) {
				d.addStraggler(node, addr, e.Time)
			}
		}
	}
	if w.opt.Denied != nil {
		w.opt.Denied(dep, node, n) // n may be 0: the series exists from the first read
	}
	for _, b := range bursts {
		w.opt.Logger.Warn("refused requests burst: one address was refused more often than the threshold within the window",
			"deployment", dep, "node", b.Node, "address", b.Address, "count", b.Count, "window", b.Window.String())
		if w.opt.Burst != nil {
			w.opt.Burst(b)
		}
	}
	if d.promo != nil && !slices.Equal(stragglersBefore, d.stragglerSet()) {
		w.announce(d)
	}
}

// observe adds a refusal to an address's window and says whether it now exceeds the threshold for the first time
// since the window last fell back to it (with the count within the window).
func (d *deployment) observe(k [2]string, at time.Time, threshold int, span time.Duration) (int, bool) {
	if threshold <= 0 || span <= 0 {
		return 0, false
	}
	win := d.windows[k]
	if win == nil {
		win = &window{}
		d.windows[k] = win
	}
	win.times = append(win.times, at)
	i := 0
	for i < len(win.times) && !win.times[i].After(at.Add(-span)) {
		i++
	}
	win.times = win.times[i:]
	n := len(win.times)
	if n <= threshold {
		win.alerted = false
		return n, false
	}
	if len(win.times) > threshold+1 {
		win.times = win.times[len(win.times)-threshold-1:] // enough to know it still exceeds
	}
	if win.alerted {
		return n, false
	}
	win.alerted = true
	return n, true
}

func (d *deployment) addStraggler(node, addr string, at time.Time) {
	k := [2]string{node, addr}
	s := d.straggler[k]
	if s == nil {
		s = &Straggler{Address: addr, Node: node}
		d.straggler[k] = s
	}
	s.Denied++
	if at.After(s.LastSeen) {
		s.LastSeen = at
	}
}

// stragglerSet is the [node, address] pairs of the stragglers, sorted.
func (d *deployment) stragglerSet() [][2]string {
	keys := slices.Collect(maps.Keys(d.straggler))
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
	return keys
}

func (d *deployment) stragglers() []Straggler {
	out := []Straggler{}
	for _, k := range d.stragglerSet() {
		out = append(out, *d.straggler[k])
	}
	return out
}

// announce reports the stragglers (w.mu held).
func (w *Watcher) announce(d *deployment) {
	list := d.stragglers()
	if len(list) > 0 {
		w.opt.Logger.Warn("stragglers: clients refused for a wrong key since the last promotion, likely still holding the retired key",
			"deployment", d.t.Deployment, "run_id", d.promo.RunID, "addresses", len(addresses(list)))
	}
	if w.opt.Stragglers != nil {
		w.opt.Stragglers(d.t.Deployment, *d.promo, list, w.opt.Clock.Now())
	}
}

// Promoted notes that a rotation of the deployment completed, its old key dropped on every node at the time at:
// the stragglers are counted anew from then (the refusals already read since then included), and announced when
// they differ from the last promotion's.
func (w *Watcher) Promoted(deploymentName, runID string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.deps[deploymentName]
	if d == nil {
		return
	}
	before := d.stragglerSet()
	d.promo = &Promotion{RunID: runID, At: at}
	d.straggler = map[[2]string]*Straggler{}
	for _, r := range d.recent {
		if !r.at.Before(at) {
			d.addStraggler(r.node, r.addr, r.at)
		}
	}
	if !slices.Equal(before, d.stragglerSet()) {
		w.announce(d)
	}
}

// PromotionOf says whether a run completed a rotation and when it dropped the old key: its first event of the
// promoting (or, in an emergency, cutting) phase, else its end.
func PromotionOf(run rotation.Run) (Promotion, bool) {
	if run.DryRun || run.State != rotation.RunCompleted {
		return Promotion{}, false
	}
	p := Promotion{RunID: run.ID, At: run.Finished}
	for _, e := range run.Events {
		if (e.Phase == rotation.PhasePromoting || e.Phase == rotation.PhaseCutting) && e.Time.Before(p.At) {
			p.At = e.Time
		}
	}
	return p, true
}

// View returns what the watcher knows of a deployment (ok false when it does not watch it).
func (w *Watcher) View(deploymentName string) (View, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.deps[deploymentName]
	if d == nil {
		return View{}, false
	}
	v := View{Stragglers: d.stragglers(), AuditOff: slices.Sorted(maps.Keys(d.off))}
	if d.promo != nil {
		p := *d.promo
		v.Promotion = &p
	}
	for k, n := range d.denied {
		v.Denied = append(v.Denied, AddressCount{Node: k[0], Address: k[1], Denied: n})
	}
	slices.SortFunc(v.Denied, func(a, b AddressCount) int {
		return strings.Compare(a.Node+"\x00"+a.Address, b.Node+"\x00"+b.Address)
	})
	return v, true
}

// StragglersOf returns the stragglers of a deployment's last promotion when runID made it.
func (w *Watcher) StragglersOf(deploymentName, runID string) ([]Straggler, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.deps[deploymentName]
	if d == nil || d.promo == nil || d.promo.RunID != runID {
		return nil, false
	}
	return d.stragglers(), true
}

// addresses are the distinct addresses of stragglers.
func addresses(list []Straggler) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s.Address) {
			out = append(out, s.Address)
		}
	}
	return out
}

// Addresses counts the distinct addresses among stragglers (rotator_stragglers).
func Addresses(list []Straggler) int { return len(addresses(list)) }

// address is an entry's client address ("unknown" when Qdrant logged none).
func address(e Entry) string {
	if e.Remote == "" {
		return "unknown"
	}
	return e.Remote
}
