package daemon

// This is the only file that imports the Prometheus client.

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qdrantrotator/rotator/rotation"
)

// Metrics are the daemon's Prometheus metrics. Key ages are read from Vault when scraped (cached briefly).
type Metrics struct {
	registry   *prometheus.Registry
	rotations  *prometheus.CounterVec
	phases     *prometheus.HistogramVec
	lastOK     *prometheus.GaugeVec
	denied     *prometheus.CounterVec
	stragglers *prometheus.GaugeVec
	mu         sync.Mutex
	phaseStart map[string]phaseMark // run id -> current phase and since when
}

type phaseMark struct {
	phase rotation.Phase
	since time.Time
}

// NewMetrics registers the metrics; m supplies in-flight runs and key ages.
func NewMetrics(m *rotation.Manager) *Metrics {
	x := &Metrics{
		registry: prometheus.NewRegistry(),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotator_rotations_total", Help: "Rotations run by this daemon, by deployment and outcome.",
		}, []string{"deployment", "outcome"}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rotator_phase_duration_seconds", Help: "Time spent in each rotation phase.",
			Buckets: []float64{0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"deployment", "phase"}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rotator_last_success_timestamp_seconds", Help: "When the last rotation of the deployment completed (Unix time).",
		}, []string{"deployment"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotator_qdrant_denied_requests_total", Help: "Requests Qdrant's audit log shows refused, by deployment and node (\"cluster\" for a cluster's merged log).",
		}, []string{"deployment", "node"}),
		stragglers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rotator_stragglers", Help: "Client addresses refused for a wrong key since the deployment's last promotion: clients still holding the retired key.",
		}, []string{"deployment"}),
		phaseStart: map[string]phaseMark{},
	}
	x.registry.MustRegister(x.rotations, x.phases, x.lastOK, x.denied, x.stragglers,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rotator_rotations_in_flight", Help: "Rotations running in this daemon now.",
		}, func() float64 { return float64(m.Running()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rotator_rotations_queued", Help: "Rotations waiting for a slot (daemon.max_parallel) in this daemon now.",
		}, func() float64 { return float64(m.Queued()) }),
		&stateCollector{m: m},
		// The daemon's own goroutines, memory and file descriptors (go_goroutines, process_resident_memory_bytes, ...).
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return x
}

// Handler serves the metrics.
func (x *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(x.registry, promhttp.HandlerOpts{})
}

// Event records phase durations as a run moves from phase to phase.
func (x *Metrics) Event(run rotation.Run, e rotation.Event) {
	if e.Phase == "" {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	prev, ok := x.phaseStart[run.ID]
	if ok && prev.phase == e.Phase {
		return
	}
	if ok {
		x.phases.WithLabelValues(run.Deployment, string(prev.phase)).Observe(e.Time.Sub(prev.since).Seconds())
	}
	x.phaseStart[run.ID] = phaseMark{phase: e.Phase, since: e.Time}
}

// Finished counts a run's outcome.
func (x *Metrics) Finished(run rotation.Run) {
	x.mu.Lock()
	if prev, ok := x.phaseStart[run.ID]; ok {
		x.phases.WithLabelValues(run.Deployment, string(prev.phase)).Observe(run.Finished.Sub(prev.since).Seconds())
		delete(x.phaseStart, run.ID)
	}
	x.mu.Unlock()
	if run.DryRun {
		return
	}
	x.rotations.WithLabelValues(run.Deployment, string(run.State)).Inc()
	if run.State == rotation.RunCompleted {
		x.lastOK.WithLabelValues(run.Deployment).Set(float64(run.Finished.Unix()))
	}
}

// Denied counts n more refused requests at a node (n 0 makes the series exist).
func (x *Metrics) Denied(deployment, node string, n int) {
	x.denied.WithLabelValues(deployment, node).Add(float64(n))
}

// Stragglers sets how many client addresses are stragglers of the deployment's last promotion.
func (x *Metrics) Stragglers(deployment string, addresses int) {
	x.stragglers.WithLabelValues(deployment).Set(float64(addresses))
}

// stateCollector reports, at scrape time, each deployment's key ages (from Vault) and whether this daemon holds
// its lease now.
type stateCollector struct {
	m *rotation.Manager

	mu      sync.Mutex
	cached  []rotation.DeploymentView
	fetched time.Time
}

var (
	keyAgeDesc = prometheus.NewDesc("rotator_key_age_seconds", "Age of the deployment's current credential in Vault, by slot.", []string{"deployment", "slot"}, nil)
	maxAgeDesc = prometheus.NewDesc("rotator_key_max_age_seconds", "The deployment's max_age: a key older than this is due (only for deployments with one).", []string{"deployment"}, nil)
	leaseDesc  = prometheus.NewDesc("rotator_lease_held", "1 while this daemon holds the deployment's lease (runs its rotation).", []string{"deployment"}, nil)
	openDesc   = prometheus.NewDesc("rotator_node_open", "1 when the node accepted a key never issued at its last check (it serves every request), else 0.", []string{"deployment", "node"}, nil)
	expiryDesc = prometheus.NewDesc("rotator_named_key_expiry_timestamp_seconds", "When the JWT a named key's consumers read expires (Unix time).", []string{"deployment", "key"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- keyAgeDesc
	ch <- maxAgeDesc
	ch <- leaseDesc
	ch <- openDesc
	ch <- expiryDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if c.cached == nil || time.Since(c.fetched) > 5*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c.cached, c.fetched = c.m.Deployments(ctx), time.Now()
		cancel()
	}
	views := c.cached
	c.mu.Unlock()
	now := time.Now()
	for _, v := range views {
		if v.Status.Version > 0 {
			ch <- prometheus.MustNewConstMetric(keyAgeDesc, prometheus.GaugeValue, now.Sub(v.Status.Since).Seconds(), v.Name, string(rotation.SlotAdmin))
		}
		if !v.Status.ReadOnlySince.IsZero() {
			ch <- prometheus.MustNewConstMetric(keyAgeDesc, prometheus.GaugeValue, now.Sub(v.Status.ReadOnlySince).Seconds(), v.Name, string(rotation.SlotReadOnly))
		}
		if v.MaxAge > 0 {
			ch <- prometheus.MustNewConstMetric(maxAgeDesc, prometheus.GaugeValue, v.MaxAge.Seconds(), v.Name)
		}
		held := 0.0
		if v.Running != "" && !v.Queued { // a queued run has not taken the lease
			held = 1
		}
		ch <- prometheus.MustNewConstMetric(leaseDesc, prometheus.GaugeValue, held, v.Name)
		for node, open := range v.Checked {
			val := 0.0
			if open {
				val = 1
			}
			ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, val, v.Name, node)
		}
		for _, k := range v.Keys {
			if !k.Expires.IsZero() {
				ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(k.Expires.Unix()), v.Name, k.Name)
			}
		}
	}
}

var auditDesc = prometheus.NewDesc("rotator_audit_findings", "Findings of the last security review, by deployment (\"\" for the fleet), check and severity.", []string{"deployment", "check", "severity"}, nil)

// WatchFindings exports the last security review's findings as rotator_audit_findings.
func (x *Metrics) WatchFindings(f *Findings) { x.registry.MustRegister(findingsCollector{f}) }

type findingsCollector struct{ f *Findings }

func (c findingsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- auditDesc }

func (c findingsCollector) Collect(ch chan<- prometheus.Metric) {
	_, list, _ := c.f.Last()
	count := map[[3]string]int{}
	for _, f := range list {
		count[[3]string{f.Deployment, f.Check, f.Severity.String()}]++
	}
	for k, n := range count {
		ch <- prometheus.MustNewConstMetric(auditDesc, prometheus.GaugeValue, float64(n), k[0], k[1], k[2])
	}
}
