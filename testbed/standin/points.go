package standin

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// pointID is Qdrant's ExtendedPointId: an unsigned integer or a UUID (kept in hyphenated lower-case form).
type pointID struct {
	uuid string // "" for numeric ids
	num  uint64
}

func (p pointID) MarshalJSON() ([]byte, error) {
	if p.uuid != "" {
		return json.Marshal(p.uuid)
	}
	return []byte(strconv.FormatUint(p.num, 10)), nil
}

func (p *pointID) UnmarshalJSON(b []byte) error {
	id, err := parsePointID(b)
	if err != nil {
		return err
	}
	*p = id
	return nil
}

// less orders ids like Qdrant: numbers first (ascending), then UUIDs.
func (p pointID) less(q pointID) bool {
	if (p.uuid == "") != (q.uuid == "") {
		return p.uuid == ""
	}
	if p.uuid == "" {
		return p.num < q.num
	}
	return p.uuid < q.uuid
}

var errBadPointID = errors.New("data did not match any variant of untagged enum ExtendedPointId")

func parsePointID(raw json.RawMessage) (pointID, error) {
	s := strings.TrimSpace(string(raw))
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return pointID{}, errBadPointID
		}
		u, ok := normalizeUUID(str)
		if !ok {
			return pointID{}, errBadPointID
		}
		return pointID{uuid: u}, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return pointID{}, errBadPointID
	}
	return pointID{num: n}, nil
}

// normalizeUUID accepts the forms of the Rust uuid crate (hyphenated, simple, braced, urn) and returns the
// hyphenated lower-case form.
func normalizeUUID(s string) (string, bool) {
	s = strings.TrimPrefix(s, "urn:uuid:")
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		s = s[1 : len(s)-1]
	}
	var h string
	switch len(s) {
	case 32:
		h = s
	case 36:
		for _, i := range []int{8, 13, 18, 23} {
			if s[i] != '-' {
				return "", false
			}
		}
		h = s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	default:
		return "", false
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", false
	}
	h = strings.ToLower(h)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], true
}

// vectorParams is one dense vector configuration.
type vectorParams struct {
	Size     uint64 `json:"size"`
	Distance string `json:"distance"`
}

// vectorsConfig is a collection's vector configuration: a single unnamed vector or named vectors (possibly none).
type vectorsConfig struct {
	Single *vectorParams            `json:"single,omitempty"`
	Named  map[string]*vectorParams `json:"named,omitempty"`
}

// params returns the configuration of a vector name ("" = unnamed).
func (v vectorsConfig) params(name string) (*vectorParams, bool) {
	if v.Single != nil {
		return v.Single, name == ""
	}
	p, ok := v.Named[name]
	return p, ok
}

// MarshalJSON renders the REST form: {"size":..,"distance":..} or {"name":{...}}.
func (v vectorsConfig) restJSON() any {
	if v.Single != nil {
		return v.Single
	}
	if v.Named == nil {
		return map[string]any{}
	}
	return v.Named
}

var distances = map[string]bool{"Cosine": true, "Euclid": true, "Dot": true, "Manhattan": true}

// normalize scales a vector to unit length for Cosine collections, as Qdrant does on upsert.
func normalize(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return v
	}
	n := float32(math.Sqrt(sum))
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = x / n
	}
	return out
}

// storedPoint is a point as kept in memory and in the operation log.
type storedPoint struct {
	ID      pointID              `json:"id"`
	Vectors map[string][]float32 `json:"v"`
	Payload json.RawMessage      `json:"p,omitempty"`
}

// checkVectors verifies the vectors of a point against the collection configuration.
func (v vectorsConfig) checkVectors(vecs map[string][]float32) error {
	for name, vec := range vecs {
		p, ok := v.params(name)
		if !ok {
			return &badInput{"Not existing vector name error: " + name}
		}
		if uint64(len(vec)) != p.Size {
			return &badInput{fmt.Sprintf("Vector dimension error: expected dim: %d, got %d", p.Size, len(vec))}
		}
	}
	return nil
}

// badInput is StorageError::BadInput ("Wrong input: ...", 400).
type badInput struct{ description string }

func (b *badInput) Error() string { return "Wrong input: " + b.description }
