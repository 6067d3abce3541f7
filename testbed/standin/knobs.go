package standin

import (
	"fmt"
	"strings"
	"time"
)

// faultKnobs are the test-only settings, read from STANDIN_* environment variables (see the package doc).
type faultKnobs struct {
	startDelay    time.Duration
	transferDelay time.Duration
	failIfSet     []string
	failIfFile    string
}

func readKnobs(env []string) (faultKnobs, error) {
	var k faultKnobs
	if v, ok := lookupEnv(env, "STANDIN_START_DELAY"); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return k, fmt.Errorf("invalid STANDIN_START_DELAY %q: want a non-negative Go duration such as 2s", v)
		}
		k.startDelay = d
	}
	if v, ok := lookupEnv(env, "STANDIN_TRANSFER_DELAY"); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return k, fmt.Errorf("invalid STANDIN_TRANSFER_DELAY %q: want a non-negative Go duration such as 1s", v)
		}
		k.transferDelay = d
	}
	if v, ok := lookupEnv(env, "STANDIN_FAIL_IF_SET"); ok {
		for _, key := range strings.Split(v, ",") {
			if key = strings.TrimSpace(key); key != "" {
				k.failIfSet = append(k.failIfSet, key)
			}
		}
	}
	if v, ok := lookupEnv(env, "STANDIN_FAIL_IF_FILE"); ok {
		k.failIfFile = v
	}
	return k, nil
}

// refusedKey returns the first STANDIN_FAIL_IF_SET key that has a non-empty value in the merged configuration.
func (k faultKnobs) refusedKey(tree map[string]any) (string, bool) {
	for _, key := range k.failIfSet {
		v, ok := lookupPath(tree, strings.ToLower(key))
		if !ok || v == nil {
			continue
		}
		if s, err := toString(key, v); err != nil || s != "" {
			return key, true
		}
	}
	return "", false
}
