package vaultsync

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

// Layout under <mount>/<prefix>/ (the consumer contract, documented in the README):
//
//	deployments/<name>/admin     consumers read: api_key, kind, fingerprint, current_since, rotation_id
//	deployments/<name>/read-only the same for the read-only credential (a key, or for a while a read JWT)
//	rotator/journal/<name>       rotator only: lease and rotation state, including the pending key
//	rotator/fingerprint          rotator only: the secret that keys fingerprints
const (
	retiredLabel = "retired"
	timeFormat   = time.RFC3339Nano
)

// ConsumerPath is the path (under the mount) consumers of a deployment's slot read.
func (s *Store) ConsumerPath(deployment string, slot rotation.Slot) string {
	return s.path("deployments", deployment, string(slot))
}

func (s *Store) journalPath(deployment string) string {
	return s.path("rotator", "journal", deployment)
}

func (s *Store) path(parts ...string) string {
	if s.prefix != "" {
		parts = append([]string{s.prefix}, parts...)
	}
	return strings.Join(parts, "/")
}

// ReadCurrent implements rotation.Store.
func (s *Store) ReadCurrent(ctx context.Context, deployment string, slot rotation.Slot) (rotation.KeyRecord, error) {
	path := s.ConsumerPath(deployment, slot)
	fields, version, err := s.Get(ctx, path)
	if err != nil {
		return rotation.KeyRecord{}, err
	}
	key, err := rotation.ParseKey(fields["api_key"])
	if err != nil {
		return rotation.KeyRecord{}, fmt.Errorf("vault: %s/%s: api_key: %w", s.mount, path, err)
	}
	since, _ := time.Parse(timeFormat, fields["current_since"])
	kind := fields["kind"]
	if kind == "" {
		kind = rotation.CredentialKey
	}
	return rotation.KeyRecord{Key: key, Kind: kind, Fingerprint: fields["fingerprint"], Since: since, RotationID: fields["rotation_id"], Version: version}, nil
}

// Publish implements rotation.Store: a new version of the consumer record; the version before stays readable and
// is labelled "previous".
func (s *Store) Publish(ctx context.Context, deployment string, slot rotation.Slot, rec rotation.KeyRecord, cas int) (int, error) {
	path := s.ConsumerPath(deployment, slot)
	kind := rec.Kind
	if kind == "" {
		kind = rotation.CredentialKey
	}
	version, err := s.Put(ctx, path, map[string]string{
		"api_key":       rec.Key.Reveal(),
		"kind":          kind,
		"fingerprint":   rec.Fingerprint,
		"current_since": rec.Since.UTC().Format(timeFormat),
		"rotation_id":   rec.RotationID,
	}, cas)
	if err != nil {
		return 0, err
	}
	// One metadata write, no read: check-and-set required from the first version on, and the labels. Labels of
	// pruned versions and the retention are looked after when a version is retired (Retire), once per rotation.
	patch := map[string]any{}
	if cas == 0 {
		patch["cas_required"] = true
	}
	// Named keys are not labelled: each rotation re-mints thousands of them, and one signed with a retired admin
	// key is refused by every node anyway.
	if slot == rotation.SlotAdmin || slot == rotation.SlotReadOnly {
		labels := map[string]any{"v" + strconv.Itoa(version): "current " + rec.Since.UTC().Format(time.RFC3339)}
		if cas > 0 {
			labels["v"+strconv.Itoa(cas)] = "previous"
		}
		patch["custom_metadata"] = labels
	}
	if len(patch) == 0 {
		return version, nil
	}
	if _, err := s.client.Logical().JSONMergePatch(ctx, s.mount+"/metadata/"+path, patch); err != nil {
		return version, fmt.Errorf("vault: metadata of %s/%s: %w", s.mount, path, classify(err))
	}
	return version, nil
}

// Retire implements rotation.Store.
func (s *Store) Retire(ctx context.Context, deployment string, slot rotation.Slot, version int, at time.Time) error {
	return s.labelVersions(ctx, s.ConsumerPath(deployment, slot), map[string]string{
		"v" + strconv.Itoa(version): retiredLabel + " " + at.UTC().Format(time.RFC3339),
	}, at)
}

// ReadJournal implements rotation.Store.
func (s *Store) ReadJournal(ctx context.Context, deployment string) (rotation.Journal, int, error) {
	f, version, err := s.Get(ctx, s.journalPath(deployment))
	if errors.Is(err, rotation.ErrNotFound) {
		return rotation.Journal{}, 0, nil
	}
	if err != nil {
		return rotation.Journal{}, 0, err
	}
	if f["one_version"] == "true" {
		s.oneVersion.Store(s.journalPath(deployment), true)
	}
	j := rotation.Journal{
		Owner: f["owner"], RotationID: f["rotation_id"], Kind: rotation.Kind(f["kind"]), Phase: rotation.Phase(f["phase"]),
		Node: f["node"], Error: f["error"], OpID: f["op_id"],
		OldFingerprint: f["old_fingerprint"], PendingFingerprint: f["pending_fingerprint"],
		InternalAuth: f["internal_auth"] == "true",
	}
	if f["nodes_done"] != "" {
		j.NodesDone = strings.Split(f["nodes_done"], ",")
	}
	j.PendingKey, _ = rotation.ParseKey(f["pending_key"])
	j.OldKey, _ = rotation.ParseKey(f["old_key"])
	j.BaseVersion, _ = strconv.Atoi(f["base_version"])
	j.PendingReadOnly, _ = rotation.ParseKey(f["pending_read_only"])
	j.OldReadOnly, _ = rotation.ParseKey(f["old_read_only"])
	j.ReadOnlyBase, _ = strconv.Atoi(f["read_only_base"])
	j.Bridge, _ = rotation.ParseKey(f["bridge"])
	for name, dst := range map[string]*time.Time{
		"lease_until": &j.LeaseUntil, "published_at": &j.PublishedAt, "started_at": &j.StartedAt, "updated_at": &j.UpdatedAt,
	} {
		if f[name] != "" {
			t, err := time.Parse(timeFormat, f[name])
			if err != nil {
				return rotation.Journal{}, 0, fmt.Errorf("vault: journal of %s: %s: %w", deployment, name, err)
			}
			*dst = t
		}
	}
	return j, version, nil
}

// WriteJournal implements rotation.Store.
func (s *Store) WriteJournal(ctx context.Context, deployment string, j rotation.Journal, cas int) (int, error) {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(timeFormat)
	}
	path := s.journalPath(deployment)
	_, oneVersion := s.oneVersion.Load(path)
	if !oneVersion && cas > 0 && j.Phase.Final() {
		// One version only: a journal's earlier versions hold the keys of rotations that have ended. Check-and-set
		// still works (version numbers keep counting). A journal made before this was set at its creation gets it
		// at an ending, before the write that says so (one_version), so no later process asks again.
		if err := s.requireCAS(ctx, path, 1); err != nil {
			return 0, err
		}
		s.oneVersion.Store(path, true)
		oneVersion = true
	}
	fields := map[string]string{
		"owner": j.Owner, "lease_until": ts(j.LeaseUntil), "rotation_id": j.RotationID, "kind": string(j.Kind),
		"phase": string(j.Phase), "node": j.Node, "nodes_done": strings.Join(j.NodesDone, ","),
		"pending_key": j.PendingKey.Reveal(), "old_key": j.OldKey.Reveal(), "base_version": strconv.Itoa(j.BaseVersion),
		"pending_read_only": j.PendingReadOnly.Reveal(), "old_read_only": j.OldReadOnly.Reveal(),
		"read_only_base": strconv.Itoa(j.ReadOnlyBase), "bridge": j.Bridge.Reveal(),
		"published_at": ts(j.PublishedAt), "started_at": ts(j.StartedAt), "updated_at": ts(j.UpdatedAt),
		"error": j.Error, "op_id": j.OpID, "old_fingerprint": j.OldFingerprint, "pending_fingerprint": j.PendingFingerprint,
		"internal_auth": strconv.FormatBool(j.InternalAuth),
	}
	if oneVersion {
		fields["one_version"] = "true"
	}
	version, err := s.Put(ctx, path, fields, cas)
	if err == nil && cas == 0 {
		// Set at creation; the next write says so.
		if err = s.requireCAS(ctx, path, 1); err == nil {
			s.oneVersion.Store(path, true)
		}
	}
	return version, err
}

// FingerprintSecret returns the secret that keys fingerprints, creating it (32 random bytes, check-and-set 0) on
// first use when create is set, so every rotator instance names a key the same way. Without create, a missing
// secret is rotation.ErrNotFound.
func (s *Store) FingerprintSecret(ctx context.Context, create bool) ([]byte, error) {
	path := s.path("rotator", "fingerprint")
	for attempt := 0; attempt < 2; attempt++ {
		f, _, err := s.Get(ctx, path)
		if err == nil {
			secret, err := base64.StdEncoding.DecodeString(f["secret"])
			if err != nil || len(secret) < 16 {
				return nil, fmt.Errorf("vault: %s/%s: field secret is not 16+ bytes of base64", s.mount, path)
			}
			return secret, nil
		}
		if !errors.Is(err, rotation.ErrNotFound) || !create {
			return nil, err
		}
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("fingerprint secret: %w", err)
		}
		_, err = s.Put(ctx, path, map[string]string{"secret": base64.StdEncoding.EncodeToString(b)}, 0)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, rotation.ErrConflict) {
			return nil, err
		}
		// Another rotator created it first: read theirs.
	}
	return nil, fmt.Errorf("vault: %s/%s: could not create or read the fingerprint secret", s.mount, path)
}
