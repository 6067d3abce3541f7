package standin

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

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
	// readFile reads a configuration file; nil means os.ReadFile (tests inject failures a root user cannot get).
	readFile func(string) ([]byte, error)
}

// loadMerged builds the merged configuration tree: built-in defaults, config/config, config/$RUN_MODE,
// config/local, --config-path, then QDRANT__* environment variables. Later layers win key by key.
//
// Every file layer is optional (config-rs File::with_name(..).required(false) in Qdrant's Settings::new): a layer
// that cannot be resolved for any reason (missing, a directory, unreadable, an exact name with another extension)
// is dropped without an error, as config-rs's File::collect does. Qdrant then logs only what its own
// `File::with_name(path).collect().is_ok()` checks report: "Config file not found: <name>" (warning) for
// config/config and config/$RUN_MODE, "Config file via --config-path is not found: <path>" (error) for
// --config-path, and nothing for config/local. A layer that is read but does not parse as one YAML mapping aborts
// the start.
func loadMerged(src layerSource) (map[string]any, []logMsg, error) {
	runMode, ok := lookupEnv(src.env, "RUN_MODE")
	if !ok {
		runMode = "development"
	}
	modePath := "config/" + runMode
	layers := []string{"config/config", modePath, "config/local"}
	if src.configPath != "" {
		layers = append(layers, src.configPath)
	}

	merged, err := parseYAMLMap([]byte(defaultConfigYAML), "built-in defaults")
	if err != nil {
		return nil, nil, fmt.Errorf("load built-in defaults: %w", err)
	}
	dropped := map[string]bool{}
	for _, name := range layers {
		data, err := resolveLayer(src.dir, name, src.readFile)
		if err != nil {
			dropped[name] = true
			continue
		}
		layer, err := parseYAMLMap(data, name)
		if err != nil {
			return nil, nil, err
		}
		mergeTree(merged, layer)
	}
	mergeTree(merged, envLayer(src.env))

	var msgs []logMsg
	if src.configPath != "" && dropped[src.configPath] {
		msgs = append(msgs, logMsg{slog.LevelError, "Config file via --config-path is not found: " + src.configPath})
	}
	for _, p := range []string{"config/config", modePath} {
		if dropped[p] {
			msgs = append(msgs, logMsg{slog.LevelWarn, "Config file not found: " + p})
		}
	}
	return merged, msgs, nil
}

// utf8BOM is skipped at the start of a configuration file.
var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// resolveLayer is config-rs 0.15.22's FileSourceFile::resolve in a build with only the yaml format (Qdrant's): an
// existing regular file of that exact name is used if its extension is yaml or yml (any other extension, or none,
// is an error: the .yaml sibling is then not tried); otherwise name.yaml, then name.yml (appended, so
// "config/prod.eu" looks for "config/prod.eu.yaml"). The file is read whole; a UTF-8 byte order mark is skipped and
// invalid UTF-8 is replaced with U+FFFD (String::from_utf8_lossy), so bad bytes are not an error. Any error means
// the optional layer is dropped.
func resolveLayer(dir, name string, readFile func(string) ([]byte, error)) ([]byte, error) {
	p := resolvePath(dir, name)
	path := ""
	if isFile(p) {
		switch extension(p) {
		case "yaml", "yml":
			path = p
		default:
			return nil, fmt.Errorf("configuration file %q is not of a supported file format", p)
		}
	} else {
		for _, ext := range []string{"yaml", "yml"} {
			if q := p + "." + ext; isFile(q) {
				path = q
				break
			}
		}
		if path == "" {
			return nil, fmt.Errorf("configuration file %q not found", name)
		}
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration file %q: %w", name, err)
	}
	return lossyUTF8(bytes.TrimPrefix(data, utf8BOM)), nil
}

// extension is Rust's Path::extension: the text after the last dot of the last component, none for a name that
// only starts with a dot.
func extension(p string) string {
	base := filepath.Base(p)
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		return base[i+1:]
	}
	return ""
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// lossyUTF8 is Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD.
func lossyUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r != utf8.RuneError || size > 1 {
			out = append(out, b[:size]...)
			b = b[size:]
			continue
		}
		out = utf8.AppendRune(out, utf8.RuneError)
		b = b[invalidPrefixLen(b):]
	}
	return out
}

// invalidPrefixLen is the length of the maximal subpart of an ill-formed sequence at the start of b (Unicode
// §3.9, as Rust's Utf8Chunks): the lead byte and the continuation bytes that could still have been valid.
func invalidPrefixLen(b []byte) int {
	lo, hi, need := byte(0x80), byte(0xbf), 0
	switch c := b[0]; {
	case c >= 0xc2 && c <= 0xdf:
		need = 1
	case c == 0xe0:
		lo, need = 0xa0, 2
	case c == 0xed:
		hi, need = 0x9f, 2
	case c >= 0xe1 && c <= 0xef:
		need = 2
	case c == 0xf0:
		lo, need = 0x90, 3
	case c == 0xf4:
		hi, need = 0x8f, 3
	case c >= 0xf1 && c <= 0xf3:
		need = 3
	default:
		return 1
	}
	n := 1
	for ; n <= need && n < len(b); n++ {
		if b[n] < lo || b[n] > hi {
			break
		}
		lo, hi = 0x80, 0xbf
	}
	return n
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
// As config-rs's yaml format: no document (empty or only comments) is an empty map; more than one document, a root
// that is not a mapping (an explicit null document such as "---" included) and a key that is not a scalar are
// errors.
func parseYAMLMap(data []byte, name string) (map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		doc := &yaml.Node{}
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse config file %q: %w", name, err)
		}
		docs = append(docs, doc)
	}
	switch len(docs) {
	case 0:
		return map[string]any{}, nil
	case 1:
	default:
		return nil, fmt.Errorf("parse config file %q: Got %d YAML documents, expected 1", name, len(docs))
	}
	v, err := yamlValue(docs[0], 0)
	if err != nil {
		return nil, fmt.Errorf("parse config file %q: %w", name, err)
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
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, id, err := yamlKey(n.Content[i], depth+1)
			if err != nil {
				return nil, err
			}
			if seen[id] {
				return nil, fmt.Errorf("line %d column %d: %s: duplicated key in mapping", n.Content[i].Line, n.Content[i].Column, k)
			}
			seen[id] = true
			v, err := yamlValue(n.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = v
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

// yamlKey is a mapping key as config-rs turns it into a string: strings as they are, integers in decimal, booleans as
// true/false, floats as written; any other key (null, a sequence, a mapping) is an error. id tells keys apart as
// yaml-rust2 does (the string "1" and the integer 1 are different keys; two equal keys are an error).
func yamlKey(n *yaml.Node, depth int) (key, id string, err error) {
	k, err := yamlValue(n, depth)
	if err != nil {
		return "", "", err
	}
	switch t := k.(type) {
	case string:
		return t, "s:" + t, nil
	case int64, uint64:
		return fmt.Sprint(t), "i:" + fmt.Sprint(t), nil
	case bool:
		return fmt.Sprint(t), "b:" + fmt.Sprint(t), nil
	case float64:
		for n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		return n.Value, "f:" + n.Value, nil
	}
	return "", "", fmt.Errorf("Cannot parse %s because it is an unsupported hash key type", describeValue(k))
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
