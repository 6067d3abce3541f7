package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/qdrantrotator/rotator/daemon"
	"github.com/qdrantrotator/rotator/rotation"
)

// cmdDaemon runs the rotation daemon until ctx ends (SIGTERM): schedules, the HTTP API, metrics, audit events.
// On SIGTERM it stops taking requests, lets each running rotation finish its current node step (or stop at the
// next safe point, leaving the journal resumable), and exits.
func cmdDaemon(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer, logger *slog.Logger) error {
	var listen string
	c, err := parseFlags("daemon", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&listen, "listen", "", "API address (overrides daemon.listen)")
	})
	if err != nil {
		return err
	}
	logger = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := newApp(ctx, c, env, logger, true)
	if err != nil {
		return err
	}
	defer a.close()
	d := a.cfg.Daemon
	if listen == "" {
		listen = d.Listen
	}

	var webhooks []daemon.Webhook
	for _, w := range d.Webhooks {
		webhooks = append(webhooks, daemon.Webhook{URL: w.URL, Secret: daemon.SecretFile(w.SecretFile)})
	}
	audit := daemon.NewAuditor(stdout, webhooks, logger)
	defer audit.Close()

	runCtx, stopRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRuns()
	var metrics *daemon.Metrics
	mgr := rotation.NewManager(runCtx, logger, rotation.Hooks{
		Event:    func(run rotation.Run, e rotation.Event) { audit.Event(run, e); metrics.Event(run, e) },
		Finished: func(run rotation.Run) { audit.Finished(run); metrics.Finished(run) },
	})
	metrics = daemon.NewMetrics(mgr)
	for _, dep := range a.selected {
		r, err := a.rotator(ctx, dep, mgr.Observer(dep.Name))
		if err != nil {
			return err
		}
		var sched *rotation.Schedule
		if dep.Schedule != "" || dep.MaxAge > 0 {
			spec := rotation.ScheduleSpec{Cron: dep.Schedule, TimeZone: dep.TimeZone, Jitter: dep.Jitter.Std(), MaxAge: dep.MaxAge.Std()}
			for _, w := range dep.Windows {
				days, span, _ := w.Parse() // checked by config validation
				spec.Windows = append(spec.Windows, rotation.Window{Days: days, Start: span[0], End: span[1]})
			}
			s, err := rotation.NewSchedule(dep.Name, spec)
			if err != nil {
				return usageError{fmt.Errorf("deployment %s: %w", dep.Name, err)}
			}
			sched = &s
		}
		mgr.Add(r, sched)
	}

	var sources []daemon.TokenSource
	for _, t := range d.Tokens {
		src := daemon.TokenSource{Name: t.Name, Admin: t.Role == "admin"}
		switch {
		case t.File != "":
			src.Read = daemon.FileToken(t.File)
		case t.Env != "":
			v := env(t.Env)
			src.Read = func(context.Context) (string, error) { return v, nil }
		default:
			path := t.Vault
			src.Read = func(ctx context.Context) (string, error) { return a.store.Field(ctx, path, "token") }
		}
		sources = append(sources, src)
	}
	handler := daemon.NewHandler(daemon.Options{
		Manager: mgr, Tokens: daemon.NewTokens(sources, 5*time.Second), Metrics: metrics.Handler(),
		Ready: func(ctx context.Context) error { return a.store.Ping(ctx) },
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("daemon.listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}
	serveErr := make(chan error, 1)
	go func() {
		if d.TLS != nil {
			serveErr <- srv.ServeTLS(ln, d.TLS.CertFile, d.TLS.KeyFile)
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()
	var session sync.WaitGroup
	session.Add(1)
	go func() { defer session.Done(); a.store.KeepLoggedIn(runCtx, logger) }()
	mgr.RunSchedules(d.PollInterval.Std())
	logger.Info("daemon started", "listen", ln.Addr().String(), "deployments", len(a.selected))

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			logger.Error("API server failed", "error", err)
		}
	}
	logger.Info("stopping: running rotations finish their node step or stop at the next safe point")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	_ = srv.Shutdown(shutdownCtx)
	cancel()
	stopRuns()
	mgr.Wait()
	session.Wait()
	logger.Info("stopped")
	return nil
}
