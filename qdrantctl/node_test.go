package qdrantctl

import (
	"slices"
	"testing"
)

func TestEnvKeys(t *testing.T) {
	env := []string{"PATH=/bin", "qdrant__service__api_key=old", "QDRANT__SERVICE__READ_ONLY_API_KEY=ro", "QDRANT__LOG_LEVEL=DEBUG", "QDRANT__SERVICE__API_KEY=later"}
	got := slotsFromEnv(env)
	if got != (ConfigKeys{APIKey: "later", ReadOnlyAPIKey: "ro"}) {
		t.Errorf("slotsFromEnv = %+v; the later of two case variants must win", got)
	}
	out := withEnvKeys(env, ConfigKeys{APIKey: "k1", AltAPIKey: "k2", ReadOnlyAPIKey: "ro"})
	want := []string{"PATH=/bin", "QDRANT__LOG_LEVEL=DEBUG", "QDRANT__SERVICE__API_KEY=k1", "QDRANT__SERVICE__ALT_API_KEY=k2", "QDRANT__SERVICE__READ_ONLY_API_KEY=ro"}
	if !slices.Equal(out, want) {
		t.Errorf("withEnvKeys = %v, want %v", out, want)
	}
	jwt := withEnvKeys(env, ConfigKeys{APIKey: "k1", JWTRBAC: true})
	if !slices.Contains(jwt, "QDRANT__SERVICE__JWT_RBAC=true") || !slotsFromEnv(jwt).JWTRBAC || slotsFromEnv([]string{"QDRANT__SERVICE__JWT_RBAC=false"}).JWTRBAC {
		t.Errorf("jwt_rbac through the environment: %v", jwt)
	}
	if out := withEnvKeys(want, ConfigKeys{APIKey: "k2"}); !slices.Equal(out, []string{"PATH=/bin", "QDRANT__LOG_LEVEL=DEBUG", "QDRANT__SERVICE__API_KEY=k2"}) {
		t.Errorf("promote env = %v", out)
	}
}
