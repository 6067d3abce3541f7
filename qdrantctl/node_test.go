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

func TestStorageMustSurviveARecreate(t *testing.T) {
	anon := "3f0c6b1e9d2a4c5b8e7f6a1d0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3a2918f7e"
	cases := []struct {
		name   string
		env    []string
		mounts []MountInfo
		ok     bool
	}{
		{"bind mount", nil, []MountInfo{{Type: "bind", Source: "/srv/q0", Destination: "/qdrant/storage"}}, true},
		{"named volume", nil, []MountInfo{{Type: "volume", Name: "q0-data", Destination: "/qdrant/storage"}}, true},
		{"anonymous volume", nil, []MountInfo{{Type: "volume", Name: anon, Destination: "/qdrant/storage"}}, false},
		{"nothing mounted", nil, nil, false},
		{"moved storage", []string{"QDRANT__STORAGE__STORAGE_PATH=/data"}, []MountInfo{{Type: "bind", Destination: "/data"}}, true},
		{"relative storage under a mounted folder", []string{"qdrant__storage__storage_path=./db"}, []MountInfo{{Type: "bind", Destination: "/qdrant"}}, true},
	}
	for _, c := range cases {
		err := storageMounted(ContainerInfo{Env: c.env, Mounts: c.mounts})
		if (err == nil) != c.ok {
			t.Errorf("%s: error %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
