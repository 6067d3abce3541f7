package vaultdev

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// AuditEntry is one line of a file audit device's log: a "request" or a "response" entry (one of each per request).
// Only the fields a test counts by are decoded; secrets in the log are HMACed by Vault anyway.
type AuditEntry struct {
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	Auth struct {
		// Accessor is the token's accessor, in clear with EnableFileAudit (hmac_accessor=false).
		Accessor    string `json:"accessor"`
		DisplayName string `json:"display_name"`
	} `json:"auth"`
	Request struct {
		Operation string `json:"operation"`
		Path      string `json:"path"`
	} `json:"request"`
	Error string `json:"error"`
}

// EnableFileAudit enables a file audit device writing to path, with token accessors in clear (hmac_accessor=false)
// so a test can tell one client's requests from another's.
func (s *Server) EnableFileAudit(ctx context.Context, path string) error {
	body := map[string]any{"type": "file", "options": map[string]string{"file_path": path, "hmac_accessor": "false"}}
	return s.call(ctx, http.MethodPut, "sys/audit/file", body, nil)
}

// PutPolicy writes an ACL policy (sys/policies/acl/<name>).
func (s *Server) PutPolicy(ctx context.Context, name, text string) error {
	return s.call(ctx, http.MethodPut, "sys/policies/acl/"+name, map[string]string{"policy": text}, nil)
}

// CreateToken creates a renewable child token of the root token with the given TTL (e.g. "1h"), display name and
// policies, and returns it with its accessor.
func (s *Server) CreateToken(ctx context.Context, displayName, ttl string, policies ...string) (token, accessor string, err error) {
	var out struct {
		Auth struct {
			ClientToken string `json:"client_token"`
			Accessor    string `json:"accessor"`
		} `json:"auth"`
	}
	body := map[string]any{"display_name": displayName, "policies": policies, "ttl": ttl, "renewable": true}
	if err := s.call(ctx, http.MethodPost, "auth/token/create", body, &out); err != nil {
		return "", "", err
	}
	if out.Auth.ClientToken == "" {
		return "", "", fmt.Errorf("vault token create: no token in the answer")
	}
	return out.Auth.ClientToken, out.Auth.Accessor, nil
}

// ReadAudit reads every entry of a file audit device's log.
func ReadAudit(path string) ([]AuditEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vault audit log: %w", err)
	}
	defer f.Close()
	var out []AuditEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("vault audit log %s: %w", path, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("vault audit log %s: %w", path, err)
	}
	return out, nil
}

// call makes one request to the server's HTTP API with the root token (trusting only the dev CA with TLS) and decodes
// the answer into out when out is not nil.
func (s *Server) call(ctx context.Context, method, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, s.Addr+"/v1/"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", s.Token)
	client := http.DefaultClient
	if s.CACert != "" {
		pem, err := os.ReadFile(s.CACert)
		if err != nil {
			return fmt.Errorf("read the dev CA: %w", err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("vault %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("vault %s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(answer)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("vault %s %s: %w", method, path, err)
	}
	return nil
}
