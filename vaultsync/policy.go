package vaultsync

import (
	"context"
	"fmt"
)

// Policy reads a Vault ACL policy's text (sys/policies/acl/<name>), for the security review. The rotator's own
// policy need not allow it: a denial comes back as an error the review reports ("could not read"). A policy that
// does not exist reads as "" (nothing granted).
func (s *Store) Policy(ctx context.Context, name string) (string, error) {
	text, err := s.client.Sys().GetPolicyWithContext(ctx, name)
	if err != nil {
		return "", fmt.Errorf("vault: read policy %s: %w", name, classify(err))
	}
	return text, nil
}
