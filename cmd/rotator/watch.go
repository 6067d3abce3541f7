package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/qdrantrotator/rotator/daemon"
	"github.com/qdrantrotator/rotator/qdrantctl"
	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/watch"
)

// watcher builds the audit-log watcher of the selected deployments: their nodes read with the admin key Vault
// holds, the refused requests counted in the metrics, the bursts and stragglers sent as audit events.
func (a *app) watcher(ctx context.Context, logger *slog.Logger, metrics *daemon.Metrics, events *daemon.Auditor) (*watch.Watcher, error) {
	alert := a.cfg.Daemon.DeniedAlert
	var targets []watch.Target
	for _, d := range a.selected {
		names, err := a.containers(ctx, d)
		if err != nil {
			return nil, err
		}
		var tlsCfg *tls.Config
		if d.TLS != nil {
			if tlsCfg, err = qdrantctl.TLSConfig(d.TLS.CAFile, d.TLS.CertFile, d.TLS.KeyFile, d.TLS.ServerName); err != nil {
				return nil, fmt.Errorf("deployment %s: %w", d.Name, err)
			}
		}
		t := watch.Target{Deployment: d.Name, Cluster: d.Cluster != nil}
		if d.Mode == "kubernetes" {
			pods, err := a.podNodes(ctx, d, tlsCfg)
			if err != nil {
				return nil, err
			}
			for _, p := range pods {
				t.Nodes = append(t.Nodes, p)
			}
		} else {
			nodes, err := a.nodes(d, names, tlsCfg)
			if err != nil {
				return nil, err
			}
			for _, n := range nodes {
				t.Nodes = append(t.Nodes, n)
			}
		}
		targets = append(targets, t)
		metrics.Stragglers(d.Name, 0)
	}
	return watch.New(watch.Options{
		Keys: a.store, Clock: rotation.SystemClock{}, Logger: logger,
		Threshold: alert.Threshold, Window: alert.Window.Std(), Ignore: func(e watch.Entry) bool { return e.TracingID == a.requestTag() },
		Denied: metrics.Denied,
		Burst:  events.DeniedBurst,
		Stragglers: func(dep string, p watch.Promotion, list []watch.Straggler, at time.Time) {
			metrics.Stragglers(dep, watch.Addresses(list))
			events.Stragglers(dep, p, list, at)
		},
	}, targets), nil
}
