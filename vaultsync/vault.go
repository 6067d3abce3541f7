// Package vaultsync keeps the rotator's keys in HashiCorp Vault (KV v2). This is the only file that imports the
// Vault SDK.
package vaultsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/qdrantrotator/rotator/rotation"
)

// Options configure the connection. Empty fields fall back to the standard VAULT_* environment
// (VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, ...).
type Options struct {
	Address string
	// Token authenticates directly (else VAULT_TOKEN); ignored when AppRole is set.
	Token string
	// TokenFile holds the token instead (vault.token_file): read at Login, and read again whenever the token can no
	// longer be renewed (revoked, past its max TTL), so a token a Vault Agent sink rewrites is picked up.
	TokenFile string
	// TokenFileRecheck is how long to wait before reading TokenFile again when the token in it cannot be renewed
	// (default 30s).
	TokenFileRecheck time.Duration
	// AppRole, when set, logs in with AppRole instead.
	AppRole *AppRole
	// Kubernetes, when set, logs in with Kubernetes auth instead.
	Kubernetes *Kubernetes
	// Mount is the KV v2 mount, e.g. "secret".
	Mount string
	// Prefix is the path under the mount that holds everything of the rotator, e.g. "qdrant".
	Prefix string
	// Retention is how long a retired key version stays readable before it is soft-deleted (0: kept until Vault's
	// max_versions prunes it).
	Retention time.Duration
}

// Kubernetes holds Kubernetes auth settings; the service account JWT is read from its file at each login (the
// kubelet rotates it).
type Kubernetes struct {
	Mount   string // default "kubernetes"
	Role    string
	JWTFile string // default /var/run/secrets/kubernetes.io/serviceaccount/token
}

// AppRole holds AppRole credentials; the secret id is read from its file at each login.
type AppRole struct {
	Mount        string // default "approle"
	RoleID       string
	SecretIDFile string
}

// Store keeps the rotator's records in one KV v2 mount, with check-and-set. It implements rotation.Store.
type Store struct {
	client    *api.Client
	kv        *api.KVv2
	mount     string
	prefix    string
	retention time.Duration
	appRole   *AppRole
	k8s       *Kubernetes
	tokenFile string
	recheck   time.Duration
	// oneVersion holds the journal paths whose metadata this process has set to keep one version.
	oneVersion sync.Map
}

var _ rotation.Store = (*Store)(nil)

// New makes a client for Vault. It does not call Vault yet (see Login).
func New(opts Options) (*Store, error) {
	if opts.Mount == "" {
		return nil, errors.New("vault: mount is empty")
	}
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault: environment: %w", cfg.Error)
	}
	if opts.Address != "" {
		cfg.Address = opts.Address
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: client: %w", err)
	}
	if opts.Token != "" {
		client.SetToken(opts.Token)
	}
	// VAULT_WRAP_TTL would wrap every KV read; the rotator never wants that.
	client.SetWrappingLookupFunc(func(string, string) string { return "" })
	mount := strings.Trim(opts.Mount, "/")
	return &Store{client: client, kv: client.KVv2(mount), mount: mount, prefix: strings.Trim(opts.Prefix, "/"), retention: opts.Retention, appRole: opts.AppRole, k8s: opts.Kubernetes,
		tokenFile: opts.TokenFile, recheck: cmp.Or(opts.TokenFileRecheck, 30*time.Second)}, nil
}

// Login logs in with AppRole or Kubernetes auth when configured (reading the secret id or the service account JWT
// anew each time); with a token it does nothing.
func (s *Store) Login(ctx context.Context) error {
	_, err := s.login(ctx)
	return err
}

// login returns the login secret (nil with plain token auth).
func (s *Store) login(ctx context.Context) (*api.Secret, error) {
	var path string
	var body map[string]any
	switch {
	case s.appRole != nil:
		secretID, err := os.ReadFile(s.appRole.SecretIDFile)
		if err != nil {
			return nil, fmt.Errorf("vault: approle login: secret id: %w", err)
		}
		path = "auth/" + cmp.Or(s.appRole.Mount, "approle") + "/login"
		body = map[string]any{"role_id": s.appRole.RoleID, "secret_id": strings.TrimSpace(string(secretID))}
	case s.k8s != nil:
		jwt, err := os.ReadFile(cmp.Or(s.k8s.JWTFile, "/var/run/secrets/kubernetes.io/serviceaccount/token"))
		if err != nil {
			return nil, fmt.Errorf("vault: kubernetes login: service account token: %w", err)
		}
		path = "auth/" + cmp.Or(s.k8s.Mount, "kubernetes") + "/login"
		body = map[string]any{"role": s.k8s.Role, "jwt": strings.TrimSpace(string(jwt))}
	case s.tokenFile != "":
		b, err := os.ReadFile(s.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("vault: token_file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, fmt.Errorf("vault: token_file %s is empty", s.tokenFile)
		}
		s.client.SetToken(tok)
		return nil, nil
	default:
		return nil, nil
	}
	sec, err := s.client.Logical().WriteWithContext(ctx, path, body)
	if err != nil {
		return nil, fmt.Errorf("vault: login at %s: %w", path, classify(err))
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, fmt.Errorf("vault: login at %s: no token in the answer", path)
	}
	s.client.SetToken(sec.Auth.ClientToken)
	return sec, nil
}

// KeepLoggedIn keeps the Vault session alive until ctx ends: it renews the token with Vault's LifetimeWatcher, and
// when the token can no longer be renewed (max TTL, revoked) it logs in again (AppRole, Kubernetes), with backoff
// while Vault is sealed or unreachable. A plain token that is not renewable (a root or dev token) needs nothing.
func (s *Store) KeepLoggedIn(ctx context.Context, logger *slog.Logger) {
	wait := time.Second
	for ctx.Err() == nil {
		sec, err := s.login(ctx)
		if err == nil && sec == nil {
			// Plain token: renew it as itself if it is renewable, to get a secret the watcher can follow.
			sec, err = s.client.Auth().Token().RenewSelfWithContext(ctx, 0)
			if err != nil && s.tokenFile != "" {
				// Not renewable (or no longer valid): read the file again later, it may hold a new token by then.
				logger.Info("vault token from token_file is not renewable; reading the file again later", "error", err, "in", s.recheck)
				select {
				case <-ctx.Done():
					return
				case <-time.After(s.recheck):
				}
				continue
			}
			if err != nil {
				logger.Info("vault token is not renewable; using it as it is", "error", err)
				return
			}
		}
		if err != nil {
			logger.Warn("vault login failed; retrying", "error", err, "in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 5*time.Minute)
			continue
		}
		wait = time.Second
		// The token was just issued or renewed; the watcher renews at once when it starts, so it starts when a
		// renewal is due (two thirds into the lease), not now: one renewal per lease, not two.
		if sec.Auth != nil && sec.Auth.LeaseDuration > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(sec.Auth.LeaseDuration) * time.Second * 2 / 3):
			}
		}
		w, err := s.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: sec})
		if err != nil {
			logger.Warn("vault token cannot be watched", "error", err)
			return
		}
		go w.Start()
		select {
		case <-ctx.Done():
		case err := <-w.DoneCh():
			if err != nil {
				logger.Warn("vault token renewal ended; logging in again", "error", err)
			}
		}
		w.Stop()
		if s.appRole == nil && s.k8s == nil && s.tokenFile == "" {
			return // nothing to log in again with
		}
	}
}

// Field reads one field of the record at path (under the prefix), e.g. an API token kept in Vault.
func (s *Store) Field(ctx context.Context, path, field string) (string, error) {
	f, _, err := s.Get(ctx, s.path(path))
	if err != nil {
		return "", err
	}
	v, ok := f[field]
	if !ok {
		return "", fmt.Errorf("vault: %s/%s has no field %q", s.mount, s.path(path), field)
	}
	return v, nil
}

// Ping checks that Vault answers, unsealed.
func (s *Store) Ping(ctx context.Context) error {
	h, err := s.client.Sys().HealthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	if h.Sealed {
		return errors.New("vault is sealed")
	}
	return nil
}

// Put writes a new version of the record at path. cas is the version the caller last read (0: the record must not
// exist yet). A lost race is reported as rotation.ErrConflict. It returns the new version.
func (s *Store) Put(ctx context.Context, path string, fields map[string]string, cas int) (int, error) {
	data := make(map[string]any, len(fields))
	for k, v := range fields {
		data[k] = v
	}
	sec, err := s.kv.Put(ctx, path, data, api.WithCheckAndSet(cas))
	if err != nil {
		return 0, fmt.Errorf("vault: write %s/%s: %w", s.mount, path, classify(err))
	}
	if sec == nil || sec.VersionMetadata == nil {
		return 0, fmt.Errorf("vault: write %s/%s: no version in the answer", s.mount, path)
	}
	return sec.VersionMetadata.Version, nil
}

// Get reads the latest version of the record at path and its version number. A missing record, or one whose latest
// version is deleted, is rotation.ErrNotFound.
func (s *Store) Get(ctx context.Context, path string) (map[string]string, int, error) {
	sec, err := s.kv.Get(ctx, path)
	if err != nil {
		return nil, 0, fmt.Errorf("vault: read %s/%s: %w", s.mount, path, classify(err))
	}
	// A deleted or destroyed latest version comes back without error and without data.
	if sec == nil || sec.Data == nil || sec.VersionMetadata == nil {
		return nil, 0, fmt.Errorf("vault: read %s/%s: %w", s.mount, path, rotation.ErrNotFound)
	}
	out := make(map[string]string, len(sec.Data))
	for k, v := range sec.Data {
		str, ok := v.(string)
		if !ok {
			return nil, 0, fmt.Errorf("vault: read %s/%s: field %q is not a string", s.mount, path, k)
		}
		out[k] = str
	}
	return out, sec.VersionMetadata.Version, nil
}

// requireCAS sets cas_required on a record's metadata, so no writer can skip check-and-set on it, and, when
// maxVersions > 0, max_versions: Vault then keeps only that many latest versions (older ones go at the next write).
func (s *Store) requireCAS(ctx context.Context, path string, maxVersions int) error {
	in := api.KVMetadataPatchInput{CASRequired: new(true)}
	if maxVersions > 0 {
		in.MaxVersions = &maxVersions
	}
	if err := s.kv.PatchMetadata(ctx, path, in); err != nil {
		return fmt.Errorf("vault: metadata of %s/%s: %w", s.mount, path, classify(err))
	}
	return nil
}

// labelVersions merges version labels into a record's custom metadata, drops labels of versions Vault no longer
// has, and soft-deletes retired versions older than the retention. Custom metadata is readable by consumers, so it
// holds labels and times only.
func (s *Store) labelVersions(ctx context.Context, path string, labels map[string]string, now time.Time) error {
	meta, err := s.kv.GetMetadata(ctx, path)
	if err != nil {
		return fmt.Errorf("vault: metadata of %s/%s: %w", s.mount, path, classify(err))
	}
	custom := map[string]any{}
	for k := range meta.CustomMetadata {
		if v, ok := strings.CutPrefix(k, "v"); ok {
			if _, present := meta.Versions[v]; !present {
				custom[k] = nil // merge patch: remove the label of a pruned version
			}
		}
	}
	var expired []int
	for k, raw := range meta.CustomMetadata {
		v, _ := raw.(string)
		at, ok := strings.CutPrefix(v, retiredLabel+" ")
		if !ok || s.retention <= 0 {
			continue
		}
		if t, err := time.Parse(time.RFC3339, at); err == nil && now.Sub(t) > s.retention {
			if n, err := strconv.Atoi(strings.TrimPrefix(k, "v")); err == nil && n != meta.CurrentVersion {
				if vm, ok := meta.Versions[strconv.Itoa(n)]; ok && vm.DeletionTime.IsZero() && !vm.Destroyed {
					expired = append(expired, n)
				}
			}
		}
	}
	for k, v := range labels {
		custom[k] = v
	}
	if _, err := s.client.Logical().JSONMergePatch(ctx, s.mount+"/metadata/"+path, map[string]any{"custom_metadata": custom}); err != nil {
		return fmt.Errorf("vault: label versions of %s/%s: %w", s.mount, path, classify(err))
	}
	if len(expired) > 0 {
		sort.Ints(expired)
		if err := s.kv.DeleteVersions(ctx, path, expired); err != nil {
			return fmt.Errorf("vault: delete retired versions %v of %s/%s: %w", expired, s.mount, path, classify(err))
		}
	}
	return nil
}

// classify maps Vault answers onto the domain's sentinels; everything else passes through wrapped. Only the status
// and the error strings of Vault's answer are kept, never the request body.
func classify(err error) error {
	if errors.Is(err, api.ErrSecretNotFound) {
		return rotation.ErrNotFound
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		if re.StatusCode == http.StatusBadRequest {
			for _, msg := range re.Errors {
				if strings.Contains(msg, "check-and-set parameter did not match") {
					return rotation.ErrConflict
				}
			}
		}
		return fmt.Errorf("status %d: %s", re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return err
}
