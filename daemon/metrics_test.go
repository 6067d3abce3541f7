package daemon

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/rotation/rotationtest"
)

// rotator_key_max_age_seconds carries each deployment's max_age, so an alert can compare rotator_key_age_seconds with
// it; a deployment without max_age (a cron schedule only, or no schedule) has no such series.
func TestKeyMaxAgeMetric(t *testing.T) {
	fp, err := rotation.NewFingerprinter([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr := rotation.NewManager(ctx, nil, rotation.Hooks{})
	for _, c := range []struct {
		name string
		spec *rotation.ScheduleSpec
	}{
		{"prod", &rotation.ScheduleSpec{Cron: "0 3 * * 0", MaxAge: 720 * time.Hour}},
		{"staging", &rotation.ScheduleSpec{Cron: "0 3 * * 0"}},
		{"dev", nil},
	} {
		key, _ := rotation.NewKey()
		rot, err := rotation.New(storeWith(t, c.name, rotation.KeyRecord{Key: key, Fingerprint: fp.Of(key), Since: time.Now()}),
			[]rotation.Node{rotationtest.NewNode("q0", rotation.Slots{APIKey: key})},
			rotation.Options{Deployment: c.name, Fingerprints: fp, ReadyTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var sched *rotation.Schedule
		if c.spec != nil {
			s, err := rotation.NewSchedule(c.name, *c.spec)
			if err != nil {
				t.Fatal(err)
			}
			sched = &s
		}
		mgr.Add(rot, sched)
	}
	srv := httptest.NewServer(NewMetrics(mgr).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := string(b)
	if !strings.Contains(got, `rotator_key_max_age_seconds{deployment="prod"} 2.592e+06`) {
		t.Errorf("no rotator_key_max_age_seconds of 720h for prod:\n%s", got)
	}
	for _, dep := range []string{"staging", "dev"} {
		if strings.Contains(got, `rotator_key_max_age_seconds{deployment="`+dep+`"}`) {
			t.Errorf("rotator_key_max_age_seconds for %s, which has no max_age:\n%s", dep, got)
		}
	}
	for _, dep := range []string{"prod", "staging", "dev"} {
		if !strings.Contains(got, `rotator_key_age_seconds{deployment="`+dep+`",slot="admin"}`) {
			t.Errorf("no admin key age for %s:\n%s", dep, got)
		}
	}
	cancel()
	mgr.Wait()
}
