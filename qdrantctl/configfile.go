package qdrantctl

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// Slot names in Qdrant's `service` section.
const (
	slotAPIKey      = "api_key"
	slotAltAPIKey   = "alt_api_key"
	slotReadOnlyKey = "read_only_api_key"
	slotJWTRBAC     = "jwt_rbac"
)

// truthy reads a boolean setting as Qdrant's config loader does.
func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on":
		return true
	}
	return false
}

// ConfigKeys are the key settings of a Qdrant YAML config file's `service` section; "" means absent (Qdrant treats
// an empty key as unset); JWTRBAC false means absent.
type ConfigKeys struct {
	APIKey, AltAPIKey, ReadOnlyAPIKey string
	JWTRBAC                           bool
}

// ReadConfigKeys reads the key slots of a Qdrant YAML config file. A missing file has no keys.
func ReadConfigKeys(path string) (ConfigKeys, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ConfigKeys{}, nil
	}
	if err != nil {
		return ConfigKeys{}, fmt.Errorf("read %s: %w", path, err)
	}
	doc, err := parseConfig(path, data)
	if err != nil {
		return ConfigKeys{}, err
	}
	service := mappingValue(doc, "service")
	return ConfigKeys{
		APIKey:         scalarValue(service, slotAPIKey),
		AltAPIKey:      scalarValue(service, slotAltAPIKey),
		ReadOnlyAPIKey: scalarValue(service, slotReadOnlyKey),
		JWTRBAC:        truthy(scalarValue(service, slotJWTRBAC)),
	}, nil
}

// WriteConfigKeys sets the key slots of a Qdrant YAML config file and keeps everything else in it, comments
// included. An empty slot is removed. The file is replaced atomically (temporary file, fsync, rename, fsync of the
// folder) with mode 0600; the previous content is kept beside it as PATH.prev for rollback.
func WriteConfigKeys(path string, keys ConfigKeys) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	doc, err := parseConfig(path, old)
	if err != nil {
		return err
	}
	service := mappingValue(doc, "service")
	if service == nil {
		service = &yaml.Node{Kind: yaml.MappingNode}
		doc.Content = append(doc.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: "service"}, service)
	}
	setScalar(service, slotAPIKey, keys.APIKey)
	setScalar(service, slotAltAPIKey, keys.AltAPIKey)
	setScalar(service, slotReadOnlyKey, keys.ReadOnlyAPIKey)
	setBool(service, slotJWTRBAC, keys.JWTRBAC)

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc}}); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if old != nil {
		if err := writeAtomic(path+".prev", old); err != nil {
			return err
		}
	}
	return writeAtomic(path, buf.Bytes())
}

// RestorePrevious puts back the copy WriteConfigKeys kept, for rollback.
func RestorePrevious(path string) error {
	prev, err := os.ReadFile(path + ".prev")
	if err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	return writeAtomic(path, prev)
}

// parseConfig returns the top-level mapping of a YAML document (an empty one for an empty file).
func parseConfig(path string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if doc.Kind == 0 { // empty file
		return &yaml.Node{Kind: yaml.MappingNode}, nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("parse %s: the top level is not a mapping", path)
	}
	return doc.Content[0], nil
}

// mappingValue returns the value node of key in a mapping, if it is a mapping itself.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.MappingNode {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalarValue(m *yaml.Node, key string) string {
	if m == nil {
		return ""
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.ScalarNode && m.Content[i+1].Tag != "!!null" {
			return m.Content[i+1].Value
		}
	}
	return ""
}

// setScalar sets key to value in a mapping, keeping the key's position and comments; value "" removes the key.
func setScalar(m *yaml.Node, key, value string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			continue
		}
		if value == "" {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
		v := m.Content[i+1]
		v.Kind, v.Tag, v.Value, v.Style, v.Content = yaml.ScalarNode, "!!str", value, 0, nil
		return
	}
	if value != "" {
		m.Content = append(m.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: key},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
	}
}

// setBool sets key to true in a mapping, or removes it for false (Qdrant's default).
func setBool(m *yaml.Node, key string, value bool) {
	if !value {
		setScalar(m, key, "")
		return
	}
	setScalar(m, key, "true")
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1].Tag = "!!bool"
		}
	}
}

// writeAtomic replaces path with data: a temporary file in the same folder, fsync, mode 0600 and the previous
// file's owner (so the Qdrant process that reads it still can), rename, fsync of the folder, so a crash leaves
// either the old or the new file, never a torn one.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && (int(sys.Uid) != os.Getuid() || int(sys.Gid) != os.Getgid()) {
			if err := f.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
				f.Close()
				return fmt.Errorf("write %s: keep its owner %d:%d: %w", path, sys.Uid, sys.Gid, err)
			}
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: open folder: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync folder: %w", path, err)
	}
	return nil
}
