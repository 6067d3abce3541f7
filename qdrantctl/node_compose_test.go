package qdrantctl

import (
	"strings"
	"testing"
)

// composeLabels are the labels of a container docker-compose 1.29.2 created (recorded with docker inspect, the
// project renamed), plus a label its image carried.
var composeLabels = map[string]string{
	"com.docker.compose.config-hash":          "1cd3c2b952cc272025385e6f5e2650aee93a4e08e084d5541387c6841d82dd9a",
	"com.docker.compose.container-number":     "1",
	"com.docker.compose.oneoff":               "False",
	"com.docker.compose.project":              "search",
	"com.docker.compose.project.config_files": "compose.yaml",
	"com.docker.compose.project.working_dir":  "/srv/search",
	"com.docker.compose.service":              "qdrant-1",
	"com.docker.compose.version":              "1.29.2",
	"io.qdrant-rotator.testbed":               "image",
}

func TestEnvModeRefusesComposeContainers(t *testing.T) {
	key := "Zk3v9Qm2_secret-key-value-never-printed-x1"
	env := []string{"PATH=/usr/bin", "QDRANT__SERVICE__API_KEY=" + key}
	storage := []MountInfo{{Type: "volume", Name: "search_qdrant-1-storage", Destination: "/qdrant/storage"}}

	err := notComposeManaged(ContainerInfo{Name: "search_qdrant-1_1", Env: env, Mounts: storage, Labels: composeLabels})
	if err == nil {
		t.Fatal("a compose container is accepted in mode env")
	}
	for _, want := range []string{`docker compose project "search"`, `service "qdrant-1"`, "mode file", "/qdrant/config/local.yaml", "bind-mounted", ".env"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), key) {
		t.Error("the refusal prints the key")
	}

	for name, labels := range map[string]map[string]string{
		"no labels":            nil,
		"other labels":         {"io.qdrant-rotator.testbed": "image", "org.opencontainers.image.version": "v1.19.0"},
		"compose version only": {"com.docker.compose.version": "1.29.2"},
	} {
		if err := notComposeManaged(ContainerInfo{Env: env, Mounts: storage, Labels: labels}); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
	// Either label is enough (a container a tool labelled by hand, or a partial copy of compose's labels).
	for _, l := range []string{"com.docker.compose.project", "com.docker.compose.service"} {
		if notComposeManaged(ContainerInfo{Labels: map[string]string{l: "x"}}) == nil {
			t.Errorf("label %s alone is not refused", l)
		}
	}
}
