package config

import (
	"fmt"
	"net/url"
	"time"
)

// reporter records one wrong field.
type reporter func(field, format string, args ...any)

// Bounds of the per-node timeouts. Below a second a stop becomes Docker's 0 s (Qdrant is killed at once) and no
// node can come back in time (its rollback then fails too); above an hour a stuck node holds the lease for hours.
const (
	minReadyTimeout = time.Second
	maxReadyTimeout = time.Hour
	minStopTimeout  = time.Second
	maxStopTimeout  = time.Hour
)

func checkBounds(bad reporter, field string, v, lo, hi time.Duration, why string) {
	switch {
	case v < lo:
		bad(field, "%s is shorter than %s (%s)", v, lo, why)
	case v > hi:
		bad(field, "%s is longer than %s", v, hi)
	}
}

// checkJWTLifetimes refuses named JWT keys that would expire before the daemon can re-mint them: it re-mints a key
// once less than a third of its lifetime remains, looks every poll_interval, and a re-mint may take up to
// ready_timeout, so the lifetime must be at least 3 × (poll_interval + ready_timeout), and never under a minute.
func checkJWTLifetimes(bad reporter, f string, d Deployment, poll time.Duration) {
	bound := max(3*(poll+d.ReadyTimeout.Std()), time.Minute)
	for _, name := range sortedKeys(d.Keys) {
		k := d.Keys[name]
		if k.Read && k.Write && len(k.Collections) == 0 {
			continue // full access is the admin key itself, no JWT
		}
		ttl, from := d.KeyTTL.Std(), "key_ttl"
		if k.TTL != 0 {
			ttl, from = k.TTL.Std(), "ttl"
		}
		if ttl < time.Minute {
			continue // refused on its own field already
		}
		if ttl < bound {
			bad(f+".keys."+name, "%s %s is too short for the daemon to re-mint the JWT before it expires: want at least %s = 3 × (daemon.poll_interval %s + ready_timeout %s)",
				from, ttl, bound, poll, d.ReadyTimeout.Std())
		}
	}
}

// checkSharedContainers refuses a container listed by two deployments: rotating one would lock the other's clients
// out.
func checkSharedContainers(bad reporter, deps []Deployment) {
	owner := map[string]string{}
	for i, d := range deps {
		for j, n := range d.Containers {
			if n == "" {
				continue
			}
			if other, ok := owner[n]; ok && other != d.Name {
				bad(fmt.Sprintf("%s.containers[%d]", deploymentField(i, d.Name), j),
					"container %q is also in deployment %s: rotating one deployment would lock the other's clients out", n, other)
				continue
			}
			owner[n] = d.Name
		}
	}
}

// isHTTPURL says whether raw is an absolute http or https URL with a host.
func isHTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
