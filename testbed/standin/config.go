package standin

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

//go:embed image/config/config.yaml
var defaultConfigYAML string

// DefaultConfigYAML returns the built-in defaults, the lowest configuration layer. The same file is shipped in the
// image as /qdrant/config/config.yaml.
func DefaultConfigYAML() string { return defaultConfigYAML }

// envPrefix is the lower-cased prefix of configuration environment variables (config-rs
// Environment::with_prefix("QDRANT").separator("__")).
const envPrefix = "qdrant__"

// logMsg is a message produced while loading the configuration, logged once the logger exists (like Qdrant's
// Settings::load_errors).
type logMsg struct {
	level slog.Level
	text  string
}

// layerSource describes where the configuration is read from.
type layerSource struct {
	// dir is the working directory relative paths are resolved against; "" means the process working directory.
	dir string
	// configPath is the --config-path argument, "" if absent.
	configPath string
	// env is the process environment as KEY=VALUE strings.
	env []string
}

// loadMerged builds the merged configuration tree: built-in defaults, config/config, config/$RUN_MODE,
// config/local, --config-path, then QDRANT__* environment variables. Later layers win key by key.
func loadMerged(src layerSource) (map[string]any, []logMsg, error) {
	var msgs []logMsg

	if src.configPath != "" {
		if _, found, _ := findConfigFile(src.dir, src.configPath); !found {
			msgs = append(msgs, logMsg{slog.LevelError, "Config file via --config-path is not found: " + src.configPath})
		}
	}
	runMode, ok := lookupEnv(src.env, "RUN_MODE")
	if !ok {
		runMode = "development"
	}
	modePath := "config/" + runMode
	for _, p := range []string{"config/config", modePath} {
		if _, found, _ := findConfigFile(src.dir, p); !found {
			msgs = append(msgs, logMsg{slog.LevelWarn, "Config file not found: " + p})
		}
	}

	merged, err := parseYAMLMap([]byte(defaultConfigYAML), "built-in defaults")
	if err != nil {
		return nil, nil, fmt.Errorf("load built-in defaults: %w", err)
	}
	layers := []string{"config/config", modePath, "config/local"}
	if src.configPath != "" {
		layers = append(layers, src.configPath)
	}
	for _, name := range layers {
		path, found, err := findConfigFile(src.dir, name)
		if err != nil {
			return nil, nil, err
		}
		if !found {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("read config file %q: %w", name, err)
		}
		layer, err := parseYAMLMap(data, name)
		if err != nil {
			return nil, nil, err
		}
		mergeTree(merged, layer)
	}
	mergeTree(merged, envLayer(src.env))
	return merged, msgs, nil
}

// findConfigFile resolves a config-rs File::with_name: an existing file is used as is if its extension is yaml or
// yml (any other extension is an error); otherwise the extension is replaced by (or extended with) yaml, then yml.
func findConfigFile(dir, name string) (string, bool, error) {
	p := resolvePath(dir, name)
	if isFile(p) {
		switch filepath.Ext(p) {
		case ".yaml", ".yml":
			return p, true, nil
		}
		return "", false, fmt.Errorf("configuration file %q is not of a supported file format", name)
	}
	for _, ext := range []string{"yaml", "yml"} {
		q := setExtension(p, ext)
		if isFile(q) {
			return q, true, nil
		}
	}
	return "", false, nil
}

// setExtension mimics Rust's PathBuf::set_extension: replace the extension of the last component, or append one.
func setExtension(p, ext string) string {
	base := filepath.Base(p)
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		return p[:len(p)-len(base)+i] + "." + ext
	}
	return p + "." + ext
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func resolvePath(dir, p string) string {
	if dir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// parseYAMLMap parses one YAML layer into a tree of map[string]any, []any and scalars. Plain scalars are resolved
// with the YAML 1.2 core schema (as yaml-rust2 in config-rs does): "0123" is the integer 123, "yes" is a string.
func parseYAMLMap(data []byte, name string) (map[string]any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse config file %q: %w", name, err)
	}
	if doc.Kind == 0 {
		return map[string]any{}, nil
	}
	v, err := yamlValue(&doc, 0)
	if err != nil {
		return nil, fmt.Errorf("parse config file %q: %w", name, err)
	}
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("parse config file %q: invalid type: %s, expected a map", name, describeValue(v))
	}
	return m, nil
}

var (
	yamlDecInt = regexp.MustCompile(`^[-+]?[0-9]+$`)
	yamlOctInt = regexp.MustCompile(`^0o[0-7]+$`)
	yamlHexInt = regexp.MustCompile(`^0x[0-9a-fA-F]+$`)
)

func yamlValue(n *yaml.Node, depth int) (any, error) {
	if depth > 100 {
		return nil, errors.New("document nested too deeply")
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return yamlValue(n.Content[0], depth+1)
	case yaml.AliasNode:
		return yamlValue(n.Alias, depth+1)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, err := yamlValue(n.Content[i], depth+1)
			if err != nil {
				return nil, err
			}
			v, err := yamlValue(n.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = v
		}
		return m, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := yamlValue(c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.Value, nil
	}
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, nil
		}
	case "!!int":
		v := n.Value
		switch {
		case yamlDecInt.MatchString(v):
			if i, err := strconv.ParseInt(v, 10, 64); err == nil {
				return i, nil
			}
			if u, err := strconv.ParseUint(strings.TrimPrefix(v, "+"), 10, 64); err == nil {
				return u, nil
			}
		case yamlOctInt.MatchString(v):
			if i, err := strconv.ParseInt(v[2:], 8, 64); err == nil {
				return i, nil
			}
		case yamlHexInt.MatchString(v):
			if i, err := strconv.ParseInt(v[2:], 16, 64); err == nil {
				return i, nil
			}
		}
		return v, nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err == nil {
			return f, nil
		}
	}
	return n.Value, nil
}

// mergeTree merges src into dst: maps merge recursively, anything else replaces.
func mergeTree(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			dm, ok := dst[k].(map[string]any)
			if !ok {
				dm = map[string]any{}
				dst[k] = dm
			}
			mergeTree(dm, sm)
			continue
		}
		dst[k] = v
	}
}

// envLayer turns QDRANT__A__B=v variables into {"a":{"b":"v"}}. The whole name is lower-cased first, so matching is
// case-insensitive; values stay strings (converted when decoded). Empty values are kept.
func envLayer(env []string) map[string]any {
	out := map[string]any{}
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		lname := strings.ToLower(name)
		if !strings.HasPrefix(lname, envPrefix) {
			continue
		}
		path := strings.Split(lname[len(envPrefix):], "__")
		if hasEmpty(path) {
			continue
		}
		setPath(out, path, value)
	}
	return out
}

func hasEmpty(parts []string) bool {
	for _, p := range parts {
		if p == "" {
			return true
		}
	}
	return len(parts) == 0
}

func setPath(m map[string]any, path []string, v any) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// lookupPath returns the value at a dotted path and whether it is present.
func lookupPath(m map[string]any, dotted string) (any, bool) {
	parts := strings.Split(dotted, ".")
	var cur any = m
	for _, p := range parts {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = mm[p]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

func lookupEnv(env []string, key string) (string, bool) {
	val, found := "", false
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			val, found = v, true
		}
	}
	return val, found
}
