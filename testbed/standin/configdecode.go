package standin

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
)

// Config is the part of Qdrant's Settings the stand-in uses or type-checks.
type Config struct {
	LogLevel          string
	TelemetryDisabled bool
	Service           ServiceConfig
	Storage           StorageConfig
	Cluster           ClusterConfig
	TLS               *TLSConfig   // nil when the tls section is null
	Audit             *AuditConfig // nil when the audit section is absent or null (Qdrant's default)
}

// ServiceConfig mirrors the used keys of Qdrant's ServiceConfig. Pointer fields are Option<...> in Qdrant.
type ServiceConfig struct {
	Host                         string
	HTTPPort                     uint16
	GRPCPort                     *uint16
	MetricsPort                  *uint16
	MaxRequestSizeMB             uint64
	MaxWorkers                   *uint64
	EnableCORS                   bool
	EnableTLS                    bool
	VerifyHTTPSClientCertificate bool
	APIKey                       *string
	AltAPIKey                    *string
	ReadOnlyAPIKey               *string
	JWTRBAC                      *bool
	EnforceInternalAuth          *bool
}

// StorageConfig holds the storage keys.
type StorageConfig struct {
	StoragePath string
	// ReplicationFactor and WriteConsistencyFactor are storage.collection.*: the defaults of new collections in
	// cluster mode (1 and 1).
	ReplicationFactor      uint64
	WriteConsistencyFactor uint64
}

// ClusterConfig holds the cluster keys.
type ClusterConfig struct {
	Enabled bool
	P2PPort uint16 // cluster.p2p.port, default 6335
	P2PTLS  bool   // cluster.p2p.enable_tls: accepted, not supported (warning)
}

// TLSConfig holds the tls keys. CertTTL nil or 0 disables reloading.
type TLSConfig struct {
	Cert    string
	Key     string
	CACert  *string
	CertTTL *uint64
}

// AuditConfig is Qdrant's AuditConfig (audit.*, qdrant.md §11b). Every field has a default, so an audit section
// holding only enabled (QDRANT__AUDIT__ENABLED=true) is complete.
type AuditConfig struct {
	Enabled bool
	// Dir is where the audit files are written, relative to the working directory (default ./storage/audit).
	Dir string
	// Hourly is rotation: hourly; false is rotation: daily (the default).
	Hourly bool
	// MaxLogFiles is how many audit files are kept (default 7; 0 counts as 1).
	MaxLogFiles           uint64
	TrustForwardedHeaders bool
	// LogAPI adds the request path to the entries of access checks (default true).
	LogAPI bool
}

// nonEmpty returns the key if it is set and not empty (empty keys are treated as unset).
func nonEmpty(k *string) (string, bool) {
	if k == nil || *k == "" {
		return "", false
	}
	return *k, true
}

// decodeConfig converts the merged tree into Config using config-rs conversion rules (strings are converted to
// bools and integers when the field needs it; numbers and bools become strings). A value that cannot be converted
// is an error naming the key.
func decodeConfig(tree map[string]any) (*Config, error) {
	d := decoder{tree: tree}
	c := &Config{}
	if err := d.requireMap("service"); err != nil {
		return nil, err
	}
	if err := d.requireMap("storage"); err != nil {
		return nil, err
	}
	var err error
	first := func(e error) {
		if err == nil && e != nil {
			err = e
		}
	}
	ll, e := d.optString("log_level")
	first(e)
	if ll != nil {
		c.LogLevel = *ll
	}
	c.TelemetryDisabled, e = d.boolDefault("telemetry_disabled", false)
	first(e)

	s := &c.Service
	s.Host, e = d.reqString("service.host")
	first(e)
	s.HTTPPort, e = d.reqU16("service.http_port")
	first(e)
	s.GRPCPort, e = d.optU16("service.grpc_port")
	first(e)
	s.MetricsPort, e = d.optU16("service.metrics_port")
	first(e)
	s.MaxRequestSizeMB, e = d.reqUint("service.max_request_size_mb", math.MaxInt64)
	first(e)
	s.MaxWorkers, e = d.optUint("service.max_workers", math.MaxInt64)
	first(e)
	s.EnableCORS, e = d.boolDefault("service.enable_cors", true)
	first(e)
	s.EnableTLS, e = d.boolDefault("service.enable_tls", false)
	first(e)
	s.VerifyHTTPSClientCertificate, e = d.boolDefault("service.verify_https_client_certificate", false)
	first(e)
	s.APIKey, e = d.optString("service.api_key")
	first(e)
	s.AltAPIKey, e = d.optString("service.alt_api_key")
	first(e)
	s.ReadOnlyAPIKey, e = d.optString("service.read_only_api_key")
	first(e)
	s.JWTRBAC, e = d.optBool("service.jwt_rbac")
	first(e)
	s.EnforceInternalAuth, e = d.optBool("service.enforce_internal_auth")
	first(e)

	c.Storage.StoragePath, e = d.reqString("storage.storage_path")
	first(e)

	c.Storage.ReplicationFactor, e = d.uintDefault("storage.collection.replication_factor", 1, math.MaxUint32)
	first(e)
	c.Storage.WriteConsistencyFactor, e = d.uintDefault("storage.collection.write_consistency_factor", 1, math.MaxUint32)
	first(e)

	c.Cluster.P2PPort = 6335
	if v, ok := lookupPath(tree, "cluster"); ok && v != nil {
		c.Cluster.Enabled, e = d.reqBool("cluster.enabled")
		first(e)
		if p, ok := lookupPath(tree, "cluster.p2p.port"); ok && p != nil {
			c.Cluster.P2PPort, e = d.reqU16("cluster.p2p.port")
			first(e)
		}
		c.Cluster.P2PTLS, e = d.boolDefault("cluster.p2p.enable_tls", false)
		first(e)
	}

	if v, ok := lookupPath(tree, "tls"); ok && v != nil {
		if _, isMap := v.(map[string]any); !isMap {
			first(typeError("tls", v, "a map"))
		} else {
			t := &TLSConfig{}
			t.Cert, e = d.reqString("tls.cert")
			first(e)
			t.Key, e = d.reqString("tls.key")
			first(e)
			t.CACert, e = d.optString("tls.ca_cert")
			first(e)
			if _, present := lookupPath(tree, "tls.cert_ttl"); present {
				t.CertTTL, e = d.optUint("tls.cert_ttl", math.MaxInt64)
				first(e)
			} else {
				def := uint64(3600)
				t.CertTTL = &def
			}
			c.TLS = t
		}
	}
	if v, ok := lookupPath(tree, "audit"); ok && v != nil {
		c.Audit, e = d.audit(v)
		first(e)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// audit decodes the audit section with the serde defaults of Qdrant's AuditConfig.
func (d decoder) audit(v any) (*AuditConfig, error) {
	if _, isMap := v.(map[string]any); !isMap {
		return nil, typeError("audit", v, "struct AuditConfig")
	}
	a := &AuditConfig{}
	var err error
	first := func(e error) {
		if err == nil && e != nil {
			err = e
		}
	}
	var e error
	a.Enabled, e = d.boolDefault("audit.enabled", false)
	first(e)
	a.Dir, e = d.stringDefault("audit.dir", "./storage/audit")
	first(e)
	rotation, e := d.stringDefault("audit.rotation", "daily")
	first(e)
	switch rotation {
	case "daily":
	case "hourly":
		a.Hourly = true
	default:
		first(fmt.Errorf("unknown variant `%s`, expected `daily` or `hourly` for key `audit.rotation`", rotation))
	}
	a.MaxLogFiles = 7
	if raw, ok := d.get("audit.max_log_files"); ok {
		a.MaxLogFiles, e = toUint("audit.max_log_files", raw, math.MaxInt64, "usize")
		first(e)
	}
	a.TrustForwardedHeaders, e = d.boolDefault("audit.trust_forwarded_headers", false)
	first(e)
	a.LogAPI, e = d.boolDefault("audit.log_api", true)
	first(e)
	return a, err
}

// warnings returns the startup warnings Qdrant logs for this configuration (Settings::validate_and_warn).
func (c *Config) warnings() []logMsg {
	var out []logMsg
	s := c.Service
	for _, k := range []struct {
		name string
		val  *string
	}{{"api_key", s.APIKey}, {"alt_api_key", s.AltAPIKey}, {"read_only_api_key", s.ReadOnlyAPIKey}} {
		if k.val != nil && *k.val == "" {
			out = append(out, logMsg{slog.LevelWarn, "Service " + k.name +
				" is set but empty, it is treated as unset and authentication may be disabled"})
		}
	}
	if s.JWTRBAC != nil && *s.JWTRBAC {
		minLen := -1
		for _, k := range []*string{s.APIKey, s.AltAPIKey} {
			if v, ok := nonEmpty(k); ok && (minLen < 0 || len(v) < minLen) {
				minLen = len(v)
			}
		}
		switch {
		case minLen < 0:
			out = append(out, logMsg{slog.LevelWarn, "JWT RBAC configured but no API key set, JWT RBAC is not enabled"})
		case minLen < 32:
			out = append(out, logMsg{slog.LevelWarn,
				"It is highly recommended to use an API key of 32 bytes when JWT RBAC is enabled"})
		}
	}
	if c.Cluster.Enabled && c.Cluster.P2PTLS {
		out = append(out, logMsg{slog.LevelWarn,
			"standin: cluster.p2p.enable_tls is not supported; the internal API is served over plain HTTP"})
	}
	return out
}

type decoder struct{ tree map[string]any }

func (d decoder) requireMap(key string) error {
	v, ok := lookupPath(d.tree, key)
	if !ok {
		return fmt.Errorf("missing field `%s`", key)
	}
	if _, isMap := v.(map[string]any); !isMap {
		return typeError(key, v, "a map")
	}
	return nil
}

func (d decoder) get(key string) (any, bool) { return lookupPath(d.tree, key) }

func (d decoder) reqString(key string) (string, error) {
	v, ok := d.get(key)
	if !ok {
		return "", missingField(key)
	}
	return toString(key, v)
}

func (d decoder) stringDefault(key, def string) (string, error) {
	v, ok := d.get(key)
	if !ok {
		return def, nil
	}
	return toString(key, v)
}

func (d decoder) optString(key string) (*string, error) {
	v, ok := d.get(key)
	if !ok || v == nil {
		return nil, nil
	}
	s, err := toString(key, v)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

func (d decoder) reqBool(key string) (bool, error) {
	v, ok := d.get(key)
	if !ok {
		return false, missingField(key)
	}
	return toBool(key, v)
}

func (d decoder) boolDefault(key string, def bool) (bool, error) {
	v, ok := d.get(key)
	if !ok {
		return def, nil
	}
	return toBool(key, v)
}

func (d decoder) optBool(key string) (*bool, error) {
	v, ok := d.get(key)
	if !ok || v == nil {
		return nil, nil
	}
	b, err := toBool(key, v)
	if err != nil {
		return nil, err
	}
	return &b, nil
}

func (d decoder) reqU16(key string) (uint16, error) {
	v, ok := d.get(key)
	if !ok {
		return 0, missingField(key)
	}
	n, err := toUint(key, v, math.MaxUint16, "u16")
	return uint16(n), err
}

func (d decoder) optU16(key string) (*uint16, error) {
	v, ok := d.get(key)
	if !ok || v == nil {
		return nil, nil
	}
	n, err := toUint(key, v, math.MaxUint16, "u16")
	if err != nil {
		return nil, err
	}
	u := uint16(n)
	return &u, nil
}

func (d decoder) reqUint(key string, max uint64) (uint64, error) {
	v, ok := d.get(key)
	if !ok {
		return 0, missingField(key)
	}
	return toUint(key, v, max, "u64")
}

func (d decoder) uintDefault(key string, def, max uint64) (uint64, error) {
	v, ok := d.get(key)
	if !ok || v == nil {
		return def, nil
	}
	n, err := toUint(key, v, max, "u32")
	if err == nil && n == 0 {
		err = fmt.Errorf("invalid value: %s, expected a nonzero u32 for key `%s`", describeValue(v), key)
	}
	return n, err
}

func (d decoder) optUint(key string, max uint64) (*uint64, error) {
	v, ok := d.get(key)
	if !ok || v == nil {
		return nil, nil
	}
	n, err := toUint(key, v, max, "u64")
	if err != nil {
		return nil, err
	}
	return &n, nil
}

func missingField(key string) error {
	return fmt.Errorf("missing configuration field `%s`", key)
}

func typeError(key string, v any, expected string) error {
	return fmt.Errorf("invalid type: %s, expected %s for key `%s`", describeValue(v), expected, key)
}

// describeValue names a value the way serde's Unexpected does.
func describeValue(v any) string {
	switch t := v.(type) {
	case nil:
		return "unit value"
	case string:
		return fmt.Sprintf("string %q", t)
	case bool:
		return fmt.Sprintf("boolean `%t`", t)
	case int, int64, uint64:
		return fmt.Sprintf("integer `%v`", t)
	case float64:
		return fmt.Sprintf("floating point `%v`", t)
	case map[string]any:
		return "map"
	case []any:
		return "sequence"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// toString converts like config-rs Value::into_string.
func toString(key string, v any) (string, error) {
	switch t := v.(type) {
	case string:
		return t, nil
	case bool:
		return strconv.FormatBool(t), nil
	case int:
		return strconv.Itoa(t), nil
	case int64:
		return strconv.FormatInt(t, 10), nil
	case uint64:
		return strconv.FormatUint(t, 10), nil
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), nil
	}
	return "", typeError(key, v, "a string")
}

// toBool converts like config-rs Value::into_bool.
func toBool(key string, v any) (bool, error) {
	switch t := v.(type) {
	case bool:
		return t, nil
	case string:
		switch strings.ToLower(t) {
		case "1", "true", "on", "yes":
			return true, nil
		case "0", "false", "off", "no":
			return false, nil
		}
	case int:
		return t != 0, nil
	case int64:
		return t != 0, nil
	case uint64:
		return t != 0, nil
	case float64:
		return t != 0, nil
	}
	return false, typeError(key, v, "a boolean")
}

// toInt converts like config-rs Value::into_int (strings: true/on/yes = 1, false/off/no = 0, else an integer, else
// a float truncated).
func toInt(key string, v any) (int64, bool, error) {
	switch t := v.(type) {
	case int:
		return int64(t), false, nil
	case int64:
		return t, false, nil
	case uint64:
		if t > math.MaxInt64 {
			return 0, true, nil
		}
		return int64(t), false, nil
	case bool:
		if t {
			return 1, false, nil
		}
		return 0, false, nil
	case float64:
		return saturate(math.Round(t)), false, nil
	case string:
		switch strings.ToLower(t) {
		case "true", "on", "yes":
			return 1, false, nil
		case "false", "off", "no":
			return 0, false, nil
		}
		if n, err := strconv.ParseInt(t, 10, 64); err == nil {
			return n, false, nil
		}
		if f, err := strconv.ParseFloat(t, 64); err == nil {
			return saturate(math.Trunc(f)), false, nil
		}
	}
	return 0, false, typeError(key, v, "an integer")
}

func saturate(f float64) int64 {
	switch {
	case math.IsNaN(f):
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

func toUint(key string, v any, max uint64, typ string) (uint64, error) {
	n, tooBig, err := toInt(key, v)
	if err != nil {
		return 0, err
	}
	if tooBig || n < 0 || uint64(n) > max {
		return 0, fmt.Errorf("invalid value: %s, expected %s for key `%s`", describeValue(v), typ, key)
	}
	return uint64(n), nil
}
