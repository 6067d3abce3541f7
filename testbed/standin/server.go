package standin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Exit codes of the stand-in.
const (
	ExitOK          = 0   // graceful shutdown (SIGTERM)
	ExitConfig      = 1   // invalid configuration, storage or TLS failure, bind failure (Qdrant exits 1 too)
	ExitUsage       = 2   // unknown command-line argument or invalid fault-knob value (clap uses 2)
	ExitRefused     = 3   // a fault knob refused the start
	ExitInterrupted = 130 // SIGINT: immediate stop
	ExitQuit        = 131 // SIGQUIT: immediate stop
	// ExitPanic is a Rust panic: cluster mode with an api_key that is not valid gRPC metadata, or an enabled audit
	// log that cannot be opened.
	ExitPanic = 101
)

// shutdownTimeout bounds the graceful drain on SIGTERM (actix's default worker shutdown timeout).
const shutdownTimeout = 30 * time.Second

// Options configures one run of the stand-in.
type Options struct {
	Args []string // command-line arguments without the program name
	Env  []string // environment as KEY=VALUE
	// Dir is the working directory relative paths are resolved against; "" means the process working directory.
	Dir    string
	Stdout io.Writer // log lines
	Stderr io.Writer // fatal errors
	// Ready, if set, is called with the bound address once the server accepts connections.
	Ready func(addr net.Addr)
	// Now, if set, replaces time.Now (JWT expiry checks, audit log timestamps and file rotation).
	Now func() time.Time
}

// Main runs the stand-in as a program and returns its exit code. SIGTERM drains in-flight requests (at most 30 s)
// and exits 0; SIGINT (130) and SIGQUIT (131) exit immediately.
func Main(args []string, environ []string) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, Options{Args: args, Env: environ, Stdout: os.Stdout, Stderr: os.Stderr})
	}()
	for {
		select {
		case code := <-done:
			return code
		case sig := <-sigs:
			switch sig {
			case syscall.SIGTERM:
				cancel()
			case syscall.SIGINT:
				return ExitInterrupted
			default:
				return ExitQuit
			}
		}
	}
}

// server is one running stand-in.
type server struct {
	cfg      *Config
	log      *slog.Logger
	store    *store
	keys     *authKeys
	mux      *http.ServeMux
	exempt   map[string]bool
	patterns map[string]bool
	maxBody  int64
	now      func() time.Time
	cluster  *clusterNode // nil standalone
	peerID   uint64       // this peer's id (GET /collections/{c}/cluster)
	audit    *auditLog    // nil unless audit.enabled
}

type accessKey struct{}

// reqAuth is Qdrant's per-request Auth: the access, how the request authenticated, and the request's metadata for
// the audit log. api is set only for a request that passed the auth middleware (keys configured).
type reqAuth struct {
	access    access
	authType  string
	subject   *string
	remote    *string
	tracingID *string
	api       *string
}

// authFrom returns the request's reqAuth, set by ServeHTTP.
func authFrom(r *http.Request) *reqAuth {
	if a, ok := r.Context().Value(accessKey{}).(*reqAuth); ok {
		return a
	}
	// unreachable: the middleware always sets it; deny by default
	return &reqAuth{access: access{scoped: true}, authType: authTypeNone}
}

func accessFrom(r *http.Request) access { return authFrom(r).access }

// newServer builds the HTTP handler for a configuration and an opened store.
func newServer(cfg *Config, st *store, log *slog.Logger, now func() time.Time) *server {
	if now == nil {
		now = time.Now
	}
	s := &server{
		cfg:      cfg,
		log:      log,
		store:    st,
		keys:     newAuthKeys(cfg.Service),
		mux:      http.NewServeMux(),
		exempt:   map[string]bool{},
		patterns: map[string]bool{},
		maxBody:  int64(cfg.Service.MaxRequestSizeMB) * 1024 * 1024,
		now:      now,
	}
	s.routes(s.mux)
	return s
}

// ServeHTTP applies Qdrant's middleware order: CORS, path normalisation (trailing slashes trimmed), auth (skipped
// for whitelisted route patterns), then the route; an unmatched path is answered 404 with an empty body after auth.
func (s *server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw, status: http.StatusOK}
	defer func() {
		if r.URL.Path != "/" {
			s.log.Info(fmt.Sprintf("%s %q %d %d %q %.6f", remoteIP(r), r.Method+" "+r.URL.Path+" "+r.Proto,
				w.status, w.size, r.UserAgent(), time.Since(start).Seconds()), "target", "actix_web::middleware::logger")
		}
	}()

	if s.cfg.Service.EnableCORS {
		origin, hasOrigin := headerValue(r.Header, "Origin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			preflight(w, r, origin, hasOrigin)
			return
		}
		if hasOrigin {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
		}
	}

	r2, routed := s.normalize(r)
	// Without keys every request has full access and authenticated as "None" (take_request_auth).
	ra := &reqAuth{access: fullAccess(), authType: authTypeNone}
	if s.audit != nil {
		ra.remote, ra.tracingID = s.audit.clientAddress(r), tracingID(r.Header)
	}
	if s.keys != nil && !(routed && s.exempt[s.pattern(r2)]) {
		c, aerr := s.keys.authenticate(r.Header, s.now())
		if aerr != nil {
			s.auditRefused(r2.URL.EscapedPath(), ra, aerr)
			writeBare(w, aerr.status, aerr.msg)
			return
		}
		api := r2.URL.EscapedPath()
		ra.access, ra.authType, ra.subject, ra.api = c.access, c.authType, c.subject, &api
	}
	if !routed {
		writeBare(w, http.StatusNotFound, "")
		return
	}
	s.mux.ServeHTTP(w, r2.WithContext(context.WithValue(r2.Context(), accessKey{}, ra)))
}

// preflight answers a CORS preflight like actix-cors with any origin, method and header allowed.
func preflight(w http.ResponseWriter, r *http.Request, origin string, hasOrigin bool) {
	if !hasOrigin {
		writePlain(w, http.StatusBadRequest, "The HTTP request header `Origin` is required but was not provided.")
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", r.Header.Get("Access-Control-Request-Method"))
	if reqHeaders := r.Header.Get("Access-Control-Request-Headers"); reqHeaders != "" {
		h.Set("Access-Control-Allow-Headers", reqHeaders)
	}
	h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	writeBare(w, http.StatusOK, "")
}

// normalize merges repeated slashes and trims trailing ones (actix NormalizePath::trim) and reports whether the
// result matches a registered route. HEAD and paths with dot segments match no route. The returned request's
// escaped path is the normalized path (the path the auth middleware and the audit log see).
func (s *server) normalize(r *http.Request) (*http.Request, bool) {
	esc := r.URL.EscapedPath()
	for strings.Contains(esc, "//") {
		esc = strings.ReplaceAll(esc, "//", "/")
	}
	if len(esc) > 1 {
		esc = strings.TrimRight(esc, "/")
	}
	if esc == "" {
		esc = "/"
	}
	r2 := r.Clone(r.Context())
	u := *r.URL
	dec, err := url.PathUnescape(esc)
	if err != nil {
		return r2, false // unreachable over HTTP: net/http refuses a request target with a bad escape
	}
	u.Path, u.RawPath = dec, esc
	if u.EscapedPath() != esc {
		u.RawPath = ""
	}
	r2.URL = &u
	if r.Method == http.MethodHead || path.Clean(esc) != esc {
		return r2, false
	}
	return r2, s.patterns[s.pattern(r2)]
}

func (s *server) pattern(r *http.Request) string {
	_, p := s.mux.Handler(r)
	return p
}

// statusWriter records the status and size for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
	size   int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(b)
	w.size += n
	return n, err
}

func remoteIP(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// Run starts the stand-in and blocks until ctx is cancelled (graceful shutdown) or start fails. It returns the exit
// code.
func Run(ctx context.Context, opts Options) int {
	stderr := opts.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	stdout := opts.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	cli, err := parseArgs(opts.Args)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n\nUsage: qdrant [OPTIONS]\n", err)
		return ExitUsage
	}
	if cli.help {
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	if cli.version {
		fmt.Fprintf(stdout, "qdrant %s\n", Version)
		return ExitOK
	}
	knobs, err := readKnobs(opts.Env)
	if err != nil {
		fmt.Fprintf(stderr, "standin: %v\n", err)
		return ExitUsage
	}
	if knobs.failIfFile != "" && fileExists(resolvePath(opts.Dir, knobs.failIfFile)) {
		fmt.Fprintf(stderr, "standin: refusing to start: %s exists (STANDIN_FAIL_IF_FILE)\n", knobs.failIfFile)
		return ExitRefused
	}

	tree, msgs, err := loadMerged(layerSource{dir: opts.Dir, configPath: cli.configPath, env: opts.Env})
	if err == nil {
		var cfg *Config
		cfg, err = decodeConfig(tree)
		if err == nil {
			return run(ctx, opts, cli, cfg, tree, msgs, knobs, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	return ExitConfig
}

func run(ctx context.Context, opts Options, cli cliArgs, cfg *Config, tree map[string]any, msgs []logMsg,
	knobs faultKnobs, stdout, stderr io.Writer) int {
	level := slog.LevelInfo
	if cfg.LogLevel != "" {
		level = parseLogLevel(cfg.LogLevel)
	}
	log := newLogger(stdout, level)
	log.Info("Qdrant stand-in, version: "+Version+", build: standin", "target", "qdrant")
	for _, m := range append(cfg.warnings(), msgs...) {
		log.Log(ctx, m.level, m.text, "target", "qdrant::settings")
	}
	if key, ok := knobs.refusedKey(tree); ok {
		fmt.Fprintf(stderr, "standin: refusing to start: %s is set (STANDIN_FAIL_IF_SET)\n", key)
		log.Error("standin: refusing to start: " + key + " is set (STANDIN_FAIL_IF_SET)")
		return ExitRefused
	}

	// Qdrant panics when an enabled audit log cannot be opened ("it may cause unlogged access to the data").
	var audit *auditLog
	if a := cfg.Audit; a != nil && a.Enabled {
		var aerr error
		if audit, aerr = openAuditLog(*a, resolvePath(opts.Dir, a.Dir), opts.Now, log); aerr != nil {
			fmt.Fprintf(stderr, "thread 'main' panicked at src/main.rs:437:10:\n"+
				"Audit logger must be initialized if audit logging is enabled: %v\n", aerr)
			return ExitPanic
		}
		defer audit.close()
		log.Info("Audit logging enabled, writing to "+a.Dir, "target", "storage::audit")
	}

	st, err := openStore(resolvePath(opts.Dir, cfg.Storage.StoragePath))
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return ExitConfig
	}
	defer st.close()
	log.Info(fmt.Sprintf("Loaded %d collections from storage", len(st.names())), "target", "storage::content_manager::toc")

	if knobs.startDelay > 0 {
		log.Info("standin: delaying start by " + knobs.startDelay.String() + " (STANDIN_START_DELAY)")
		select {
		case <-time.After(knobs.startDelay):
		case <-ctx.Done():
			return ExitOK
		}
	}

	storageDir := resolvePath(opts.Dir, cfg.Storage.StoragePath)
	var cn *clusterNode
	if cfg.Cluster.Enabled {
		uri, bootstrap := cli.uri, cli.bootstrap
		if v, ok := lookupEnv(opts.Env, "QDRANT_URI"); ok && uri == "" {
			uri = v
		}
		if v, ok := lookupEnv(opts.Env, "QDRANT_BOOTSTRAP"); ok && bootstrap == "" {
			bootstrap = v
		}
		log.Info("Distributed mode is enabled", "target", "qdrant")
		cn, err = startCluster(ctx, clusterOptions{cfg: cfg, dir: storageDir, uri: uri, bootstrap: bootstrap, store: st,
			log: log, now: opts.Now, knobs: knobs, audit: audit})
		if errors.Is(err, errInvalidMetadataKey) {
			fmt.Fprintf(stderr, "thread 'main' panicked at lib/api/src/grpc/transport_channel_pool.rs: %v: InvalidMetadataValue\n", err)
			return ExitPanic
		}
		if err != nil {
			fmt.Fprintf(stderr, "Error: %v\n", err)
			return ExitConfig
		}
		defer cn.shutdown()
	}
	srv := newServer(cfg, st, log, opts.Now)
	srv.cluster, srv.audit = cn, audit
	if cn != nil {
		srv.peerID = cn.id
	} else if srv.peerID, err = peerIDFor(storageDir); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return ExitConfig
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// The TLS config is applied through the listener (not http.Server.TLSConfig), so HTTP/1.1 only.
	var tc *tls.Config
	if cfg.Service.EnableTLS {
		tc, err = tlsConfig(cfg, opts.Dir, log)
		if err != nil {
			fmt.Fprintf(stderr, "Error: %v\n", err)
			return ExitConfig
		}
		log.Info("TLS enabled for REST API", "target", "qdrant::actix")
	} else {
		log.Info("TLS disabled for REST API", "target", "qdrant::actix")
	}

	addr := net.JoinHostPort(cfg.Service.Host, strconv.Itoa(int(cfg.Service.HTTPPort)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "Error: bind REST API on %s: %v\n", addr, err)
		return ExitConfig
	}
	port := cfg.Service.HTTPPort
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		port = uint16(ta.Port)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- hs.Serve(ln) }()
	log.Info(fmt.Sprintf("Qdrant HTTP listening on %d", port), "target", "qdrant::actix")
	var ms *http.Server
	if mp := cfg.Service.MetricsPort; mp != nil {
		ms, err = serveMetrics(cfg, srv, tc, *mp, log, serveErr)
		if err != nil {
			hs.Close()
			fmt.Fprintf(stderr, "Error: %v\n", err)
			return ExitConfig
		}
	}
	if cfg.Service.GRPCPort != nil {
		log.Info(fmt.Sprintf("standin: gRPC is not served (grpc_port %d ignored)", *cfg.Service.GRPCPort))
	}
	touchInitFile(opts, log)
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}

	select {
	case err := <-serveErr:
		fmt.Fprintf(stderr, "Error: REST server: %v\n", err)
		return ExitConfig
	case <-ctx.Done():
	}
	log.Info("SIGTERM received; starting graceful shutdown", "target", "actix_server::server")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if ms != nil {
		go ms.Shutdown(sctx)
	}
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("graceful shutdown did not finish: " + err.Error())
	}
	if cn != nil {
		cn.shutdown()
	}
	if err := st.close(); err != nil {
		log.Error("close storage: " + err.Error())
	}
	log.Info("Stopped", "target", "qdrant")
	return ExitOK
}

// touchInitFile creates Qdrant's "started" indicator (QDRANT_INIT_FILE_PATH, default .qdrant-initialized).
func touchInitFile(opts Options, log *slog.Logger) {
	p, ok := lookupEnv(opts.Env, "QDRANT_INIT_FILE_PATH")
	if !ok || p == "" {
		p = ".qdrant-initialized"
	}
	f, err := os.OpenFile(resolvePath(opts.Dir, p), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		log.Warn("Failed to create init file indicator: " + err.Error())
		return
	}
	f.Close()
}

// certLoader serves the REST certificate and re-reads it after cert_ttl on the next handshake; a failed reload
// keeps the previous certificate (Qdrant's RotatingCertificateResolver).
type certLoader struct {
	certPath, keyPath string
	ttl               time.Duration
	log               *slog.Logger
	mu                sync.Mutex
	cert              *tls.Certificate
	loaded            time.Time
}

func (c *certLoader) load() error {
	cert, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", c.certPath, c.keyPath, err)
	}
	c.cert, c.loaded = &cert, time.Now()
	return nil
}

func (c *certLoader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ttl > 0 && time.Since(c.loaded) >= c.ttl {
		old := c.cert
		if err := c.load(); err != nil {
			c.log.Warn("Failed to refresh TLS certificate, keeping the current one: " + err.Error())
			c.cert, c.loaded = old, time.Now()
		}
	}
	return c.cert, nil
}

func tlsConfig(cfg *Config, dir string, log *slog.Logger) (*tls.Config, error) {
	if cfg.TLS == nil {
		return nil, errors.New("TLS config is not defined in the Qdrant config file")
	}
	cl := &certLoader{certPath: resolvePath(dir, cfg.TLS.Cert), keyPath: resolvePath(dir, cfg.TLS.Key), log: log}
	if cfg.TLS.CertTTL != nil {
		cl.ttl = time.Duration(*cfg.TLS.CertTTL) * time.Second
	}
	if err := cl.load(); err != nil {
		return nil, err
	}
	tc := &tls.Config{GetCertificate: cl.get, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if cfg.Service.VerifyHTTPSClientCertificate {
		if cfg.TLS.CACert == nil {
			return nil, errors.New("verify_https_client_certificate requires tls.ca_cert")
		}
		pem, err := os.ReadFile(resolvePath(dir, *cfg.TLS.CACert))
		if err != nil {
			return nil, fmt.Errorf("read TLS CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("parse TLS CA certificate %s: no PEM certificate found", *cfg.TLS.CACert)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// serveMetrics starts the separate metrics server of service.metrics_port: only GET /metrics, without
// authentication (Qdrant's metrics_service has no auth middleware); TLS follows service.enable_tls.
func serveMetrics(cfg *Config, srv *server, tc *tls.Config, port uint16, log *slog.Logger, errs chan<- error) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		srv.handleMetrics(w, r.WithContext(context.WithValue(r.Context(), accessKey{},
			&reqAuth{access: fullAccess(), authType: authTypeNone})))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { writeBare(w, http.StatusNotFound, "") })
	addr := net.JoinHostPort(cfg.Service.Host, strconv.Itoa(int(port)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bind metrics server on %s: %w", addr, err)
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		port = uint16(ta.Port)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	ms := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := ms.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- err
		}
	}()
	log.Info(fmt.Sprintf("Qdrant metrics listening on %d", port), "target", "qdrant::actix")
	return ms, nil
}
