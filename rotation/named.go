package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// NamedKey is a named credential published at its own consumer path (slot "keys/<name>"), so a consumer's policy can
// grant exactly one path. Full access is the admin key itself; anything less is a JWT signed with the admin key
// (Qdrant's jwt_rbac), re-minted in every rotation while both admin keys are accepted.
type NamedKey struct {
	Name string
	// Full is read and write on everything: the admin key.
	Full bool
	// Write, with Collections, is read-write on those collections; without Collections a key is global read-only.
	Write       bool
	Collections []string
	// TTL is the JWT's lifetime (its exp).
	TTL time.Duration
}

// Slot is the consumer path of the key.
func (k NamedKey) Slot() Slot { return Slot("keys/" + k.Name) }

// access is the JWT's `access` claim: "r", or a list of collection grants.
func (k NamedKey) access() any {
	if len(k.Collections) == 0 {
		return "r"
	}
	mode := "r"
	if k.Write {
		mode = "rw"
	}
	grants := make([]map[string]string, len(k.Collections))
	for i, c := range k.Collections {
		grants[i] = map[string]string{"collection": c, "access": mode}
	}
	return grants
}

// signToken mints a JWT that Qdrant's jwt_rbac accepts: HS256 signed with an admin key, {"access":...,"exp":...}.
// It is a Key, so it never prints.
func signToken(admin Key, access any, exp time.Time) (Key, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"access": access, "exp": exp.Unix()})
	signed, err := tok.SignedString([]byte(admin.Reveal()))
	if err != nil {
		return Key{}, fmt.Errorf("mint JWT: %w", err)
	}
	return Key{v: signed}, nil
}

// usesJWTKeys says whether a named key is a JWT (and so expires).
func (r *Rotator) usesJWTKeys() bool {
	for _, k := range r.opt.Keys {
		if !k.Full {
			return true
		}
	}
	return false
}

// usesJWT says whether the rotation needs Qdrant's jwt_rbac on every node.
func (r *Rotator) usesJWT() bool { return r.opt.ReadOnly || r.usesJWTKeys() }

// remintWorkers is how many named keys are published at once.
const remintWorkers = 16

// RemintKeys publishes every named key for the admin key signing: the key itself for full access, a fresh JWT
// otherwise. It first proves on every node that a JWT signed with signing is accepted. Keys this rotation already
// published (a rerun after a crash) are left alone. It returns how many it published.
func (r *Rotator) RemintKeys(ctx context.Context, signing Key, rotationID string) (int, error) {
	now := r.now()
	if err := r.proveKeys(ctx, signing, now); err != nil {
		return 0, err
	}
	return r.publishKeys(ctx, signing, rotationID, now)
}

// proveKeys proves on every node that the named keys' JWTs, signed with signing, are accepted (one sample).
func (r *Rotator) proveKeys(ctx context.Context, signing Key, now time.Time) error {
	if i := slices.IndexFunc(r.opt.Keys, func(k NamedKey) bool { return !k.Full }); i >= 0 {
		return r.proveJWT(ctx, signing, r.opt.Keys[i], now)
	}
	return nil
}

// publishKeys publishes every named key for the admin key signing, remintWorkers at a time, and returns how many it
// wrote (keys this rotation already published are left alone).
func (r *Rotator) publishKeys(ctx context.Context, signing Key, rotationID string, now time.Time) (int, error) {
	jobs := make(chan NamedKey)
	var mu sync.Mutex
	var errs []error
	published := 0
	var wg sync.WaitGroup
	for w := 0; w < min(remintWorkers, len(r.opt.Keys)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				_, did, err := r.publishNamed(ctx, k, signing, rotationID, now)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("key %s: %w", k.Name, err))
				} else if did {
					published++
				}
				mu.Unlock()
			}
		}()
	}
	for _, k := range r.opt.Keys {
		select {
		case jobs <- k:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return published, err
	}
	return published, ctx.Err()
}

// proveJWT proves on every node that a JWT with k's access, signed with signing, is accepted (and no node is open).
func (r *Rotator) proveJWT(ctx context.Context, signing Key, k NamedKey, now time.Time) error {
	sample, err := signToken(signing, k.access(), now.Add(time.Minute))
	if err != nil {
		return err
	}
	if err := r.checkAll(ctx, sample); err != nil {
		return fmt.Errorf("JWT signed with %s: %w", r.fp(signing), err)
	}
	return nil
}

// publishNamed publishes k's credential for the admin key signing and returns the record and whether it wrote it.
func (r *Rotator) publishNamed(ctx context.Context, k NamedKey, signing Key, rotationID string, now time.Time) (KeyRecord, bool, error) {
	rec := KeyRecord{Key: signing, Kind: CredentialKey, Since: now, RotationID: rotationID}
	if !k.Full {
		tok, err := signToken(signing, k.access(), now.Add(k.TTL))
		if err != nil {
			return rec, false, err
		}
		rec.Key, rec.Kind = tok, CredentialJWT
	}
	rec.Fingerprint = r.fp(rec.Key)
	did, err := r.publishOnce(ctx, k.Slot(), rec, 0)
	return rec, did, err
}
