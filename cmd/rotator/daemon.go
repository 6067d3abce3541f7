package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/qdrantrotator/rotator/daemon"
	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/watch"
)

// cmdDaemon runs the rotation daemon until ctx ends (SIGTERM): schedules, the HTTP API, metrics, audit events.
// At most daemon.max_parallel deployments rotate at once; the others wait, queued. On SIGTERM it stops taking
// requests, lets each running rotation finish its current node step (or stop at the next safe point, leaving the
// journal resumable), ends each queued run having done nothing, and exits.
func cmdDaemon(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer, logger *slog.Logger) error {
	var listen string
	c, err := parseFlags("daemon", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&listen, "listen", "", "API address (overrides daemon.listen)")
	})
	if err != nil {
		return err
	}
	logger = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := newApp(ctx, c, env, logger)
	if err != nil {
		return err
	}
	defer a.close()
	d := a.cfg.Daemon
	if listen == "" {
		listen = d.Listen
	}
	a.cfg.Daemon.Listen = listen // the security review judges the address served

	var webhooks []daemon.Webhook
	for _, w := range d.Webhooks {
		webhooks = append(webhooks, daemon.Webhook{URL: w.URL, Secret: daemon.SecretFile(w.SecretFile)})
	}
	audit := daemon.NewAuditor(stdout, webhooks, logger)
	defer audit.Close()

	runCtx, stopRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRuns()
	var metrics *daemon.Metrics
	var watcher *watch.Watcher // set before any run can start
	mgr := rotation.NewManager(runCtx, logger, rotation.Hooks{
		Event: func(run rotation.Run, e rotation.Event) { audit.Event(run, e); metrics.Event(run, e) },
		Finished: func(run rotation.Run) {
			audit.Finished(run)
			metrics.Finished(run)
			if p, ok := watch.PromotionOf(run); ok {
				watcher.Promoted(run.Deployment, p.RunID, p.At) // its stragglers are counted from then
			}
		},
	})
	mgr.SetMaxParallel(int(d.MaxParallel))
	metrics = daemon.NewMetrics(mgr)
	findings := &daemon.Findings{}
	metrics.WatchFindings(findings)
	if err := a.addDeployments(ctx, mgr); err != nil {
		return err
	}
	if watcher, err = a.watcher(ctx, logger, metrics, audit); err != nil {
		return err
	}
	handler := daemon.NewHandler(daemon.Options{
		Manager: mgr, Tokens: daemon.NewTokens(a.tokenSources(env), 5*time.Second, logger), Metrics: metrics.Handler(), Findings: findings, Watch: watcher, Logger: logger,
		Ready: func(ctx context.Context) error { return vaultReady(ctx, a.store, a.selected[0].Name) },
	})
	tlsCfg, err := a.apiTLS()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("daemon.listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: handler, TLSConfig: tlsCfg, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}
	serveErr := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			serveErr <- srv.ServeTLS(ln, "", "")
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()
	var session sync.WaitGroup
	session.Add(1)
	go func() { defer session.Done(); a.store.KeepLoggedIn(runCtx, logger) }()
	mgr.RunSchedules(d.PollInterval.Std())
	var auditing sync.WaitGroup
	auditing.Add(2)
	go func() { defer auditing.Done(); a.auditEvery(runCtx, d.AuditInterval.Std(), findings, audit) }()
	go func() { defer auditing.Done(); watcher.Run(runCtx, d.PollInterval.Std()) }()
	logger.Info("daemon started", "listen", ln.Addr().String(), "deployments", len(a.selected), "max_parallel", int(d.MaxParallel))

	var failed error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			failed = fmt.Errorf("API server: %w", err) // exit 1, not 0: the daemon did not stop by request
		}
	}
	logger.Info("stopping: running rotations finish their node step or stop at the next safe point")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	_ = srv.Shutdown(shutdownCtx)
	cancel()
	stopRuns()
	mgr.Wait()
	auditing.Wait()
	session.Wait()
	logger.Info("stopped")
	return failed
}

// auditEvery runs the security review at start and then every interval until ctx ends, keeping its findings for
// GET /v1/audit and the metrics, and sending an audit event when they change.
func (a *app) auditEvery(ctx context.Context, interval time.Duration, findings *daemon.Findings, events *daemon.Auditor) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		list := a.audit(ctx)
		if at := time.Now(); ctx.Err() == nil && findings.Set(at, list) {
			events.FindingsChanged(at, list)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// addDeployments gives the manager a rotator, and its schedule if it has one, for each selected deployment.
func (a *app) addDeployments(ctx context.Context, mgr *rotation.Manager) error {
	for _, dep := range a.selected {
		r, err := a.rotator(ctx, dep, mgr.Observer(dep.Name))
		if err != nil {
			return err
		}
		var sched *rotation.Schedule
		if spec, ok := dep.ScheduleSpec(); ok {
			s, err := rotation.NewSchedule(dep.Name, spec) // config validation compiled this same spec
			if err != nil {
				return usageError{fmt.Errorf("deployment %s: %w", dep.Name, err)}
			}
			sched = &s
		}
		mgr.Add(r, sched)
	}
	return nil
}

// tokenSources says where each of daemon.tokens is read from: a file, a variable, or a Vault path.
func (a *app) tokenSources(env func(string) string) []daemon.TokenSource {
	var sources []daemon.TokenSource
	for _, t := range a.cfg.Daemon.Tokens {
		src := daemon.TokenSource{Name: t.Name, Admin: t.Role == "admin"}
		switch {
		case t.File != "":
			src.Read = daemon.FileToken(t.File)
		case t.Env != "":
			src.Read = daemon.EnvToken(t.Env, env) // read at each re-read: an unset variable grants nothing
		default:
			path := t.Vault
			src.Read = func(ctx context.Context) (string, error) { return a.store.Field(ctx, path, "token") }
		}
		sources = append(sources, src)
	}
	return sources
}

// apiTLS loads daemon.tls (nil: the API serves plain HTTP).
func (a *app) apiTLS() (*tls.Config, error) {
	c := a.cfg.Daemon.TLS
	if c == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("daemon.tls: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// readinessStore is what /readyz asks Vault.
type readinessStore interface {
	Ping(ctx context.Context) error
	ReadJournal(ctx context.Context, deployment string) (rotation.Journal, int, error)
}

// vaultReady says whether Vault can serve the daemon now: it answers, it is unsealed, and the daemon's token can
// still act (an authenticated read of a record the daemon needs: an expired, revoked or denied token fails it).
func vaultReady(ctx context.Context, s readinessStore, deployment string) error {
	if err := s.Ping(ctx); err != nil {
		reason := "unreachable"
		if strings.Contains(err.Error(), "sealed") { // vaultsync.Store.Ping: "vault is sealed"
			reason = "sealed"
		}
		return &daemon.NotReadyError{Reason: reason, Err: err}
	}
	if _, _, err := s.ReadJournal(ctx, deployment); err != nil {
		return &daemon.NotReadyError{Reason: "token", Err: fmt.Errorf("authenticated read with the daemon's token: %w", err)}
	}
	return nil
}
