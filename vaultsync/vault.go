// Package vaultsync keeps the rotator's keys in HashiCorp Vault (KV v2). This is the only file that imports the
// Vault SDK.
package vaultsync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
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
	// AppRole, when set, logs in with AppRole instead.
	AppRole *AppRole
	// Mount is the KV v2 mount, e.g. "secret".
	Mount string
	// Prefix is the path under the mount that holds everything of the rotator, e.g. "qdrant".
	Prefix string
	// Retention is how long a retired key version stays readable before it is soft-deleted (0: kept until Vault's
	// max_versions prunes it).
	Retention time.Duration
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
	return &Store{client: client, kv: client.KVv2(mount), mount: mount, prefix: strings.Trim(opts.Prefix, "/"), retention: opts.Retention, appRole: opts.AppRole}, nil
}

// Login logs in with AppRole when configured (reading the secret id file anew each time); with a token it does
// nothing.
func (s *Store) Login(ctx context.Context) error {
	if s.appRole == nil {
		return nil
	}
	secretID, err := os.ReadFile(s.appRole.SecretIDFile)
	if err != nil {
		return fmt.Errorf("vault: approle login: secret id: %w", err)
	}
	mount := s.appRole.Mount
	if mount == "" {
		mount = "approle"
	}
	sec, err := s.client.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{
		"role_id": s.appRole.RoleID, "secret_id": strings.TrimSpace(string(secretID)),
	})
	if err != nil {
		return fmt.Errorf("vault: approle login: %w", classify(err))
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return errors.New("vault: approle login: no token in the answer")
	}
	s.client.SetToken(sec.Auth.ClientToken)
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

// requireCAS sets cas_required on a record's metadata, so no writer can skip check-and-set on it.
func (s *Store) requireCAS(ctx context.Context, path string) error {
	yes := true
	if err := s.kv.PatchMetadata(ctx, path, api.KVMetadataPatchInput{CASRequired: &yes}); err != nil {
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
