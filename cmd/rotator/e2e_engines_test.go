package main

// A deployment whose nodes live on two Docker Engines: the main one (the DOCKER_* environment) and a second dockerd
// the test bed starts on this machine (testbed/dockerd), reached over tcp:// with TLS client certificates, or over
// ssh:// through a fake ssh that runs `docker system dial-stdio`.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qdrantrotator/rotator/qdrantctl"
	"github.com/qdrantrotator/rotator/rotation"
	"github.com/qdrantrotator/rotator/testbed/dockerd"
	"github.com/qdrantrotator/rotator/testbed/harness"
)

// secondEngine starts a second dockerd (with a TLS port), loads the stand-in image into it, and returns it with a
// harness on it.
func secondEngine(t *testing.T) (*dockerd.Daemon, *harness.Harness) {
	t.Helper()
	d := dockerd.StartT(t, dockerd.Options{TLS: true})
	d.LoadImageT(t, harness.NewT(t).StandinImageT(t))
	return d, harness.NewAtT(t, d.Host)
}

// addDockerHosts appends a docker_hosts section to the fixture's config (its deployment is the file's last).
func (f *fixture) addDockerHosts(hosts map[string]string) {
	f.t.Helper()
	text := "    docker_hosts:\n"
	for name, engine := range hosts {
		text += fmt.Sprintf("      %s: %s\n", name, engine)
	}
	file, err := os.OpenFile(f.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.WriteString(text); err != nil {
		f.t.Fatal(err)
	}
}

// assertOnEngine checks that a node's container is on the second engine and not on the main one.
func (f *fixture) assertOnEngine(name string, second *harness.Harness) {
	f.t.Helper()
	ctx := context.Background()
	if _, err := second.Engine.Inspect(ctx, name); err != nil {
		f.t.Fatalf("node %s is not on the second engine: %v", name, err)
	}
	if _, err := f.h.Engine.Inspect(ctx, name); !errors.Is(err, qdrantctl.ErrNoContainer) {
		f.t.Fatalf("node %s is on the main engine too: %v", name, err)
	}
}

// TestRotationAcrossEngines rotates one deployment of three nodes, two on the main engine and one on a second engine
// reached over tcp:// with TLS client certificates, in env mode and in file mode, while a prober plays a client
// holding Vault's current key: no request is rejected, and every node takes the new key and refuses the old one.
func TestRotationAcrossEngines(t *testing.T) {
	for _, mode := range []string{"env", "file"} {
		t.Run(mode, func(t *testing.T) {
			d, second := secondEngine(t)
			f := newFixture(t, fixtureOpts{nodes: 3, mode: mode, engines: map[int]*harness.Harness{1: second}})
			f.assertOnEngine(f.names[1], second)
			f.addDockerHosts(map[string]string{f.names[1]: fmt.Sprintf("{host: %q, tls_verify: true, cert_path: %s}", d.TCPHost, d.CertDir)})
			cur, _ := f.rotateUnderProbe(10)
			f.assertOnEngine(f.names[1], second) // recreated (env) or restarted (file) where it was
			if j := f.journal(); j.Phase != rotation.PhaseDone || j.Owner != "" {
				t.Errorf("journal phase %s owner %q, want done and unlocked", j.Phase, j.Owner)
			}
			if code, text := f.rotator("verify"); code != exitOK {
				t.Errorf("verify exited %d:\n%s", code, text)
			}
			f.assertNoLeak(cur.Key, f.journal().PendingKey)
		})
	}
}

// TestRotationOverSSHEngine rotates a deployment with a node on an engine reached over ssh://, the docker CLI's way
// (`ssh ... -- HOST docker system dial-stdio`); the ssh on PATH is a fake that runs that command against the second
// engine's socket.
func TestRotationOverSSHEngine(t *testing.T) {
	d, second := secondEngine(t)
	logFile := dockerd.FakeSSH(t, d.Host)
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "env", engines: map[int]*harness.Harness{1: second}})
	f.addDockerHosts(map[string]string{f.names[1]: `{host: "ssh://rotator@127.0.0.1"}`})
	f.rotateUnderProbe(5)
	f.assertOnEngine(f.names[1], second)
	if log, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(log), "-l rotator ") ||
		!strings.Contains(string(log), " -- 127.0.0.1 docker system dial-stdio") {
		t.Errorf("ssh ran with %q (%v); want -l rotator ... -- 127.0.0.1 docker system dial-stdio", log, err)
	}
	f.assertNoLeak(f.current().Key)
}

// TestEngineUnreachableMidRotation: a rotator process is frozen just before it stages the node on the second
// engine; the engine then becomes unreachable (the TCP path to it is cut; the engine and its containers keep
// running) and the rotator goes on. It must fail with an error naming the node and its engine, leaving a journal a
// rerun resumes; once the engine is reachable again, a rerun ends the rotation, and every node accepts Vault's
// current key and refuses the retired one and a key never issued.
func TestEngineUnreachableMidRotation(t *testing.T) {
	d, second := secondEngine(t)
	fw := dockerd.NewForwarderT(t, strings.TrimPrefix(d.TCPHost, "tcp://"))
	bin := buildRotator(t)
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "env", engines: map[int]*harness.Harness{1: second}})
	engine := "tcp://" + fw.Addr()
	f.addDockerHosts(map[string]string{f.names[1]: fmt.Sprintf("{host: %q, tls_verify: true, cert_path: %s}", engine, d.CertDir)})
	k1 := f.current().Key

	a, out, done := f.startFrozenRotator(bin, "stage:"+f.names[1]+":begin")
	fw.Cut()
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		text := out.String()
		if code != exitError {
			t.Fatalf("the rotator exited %d with its node's engine unreachable, want %d (failed, resumable):\n%s", code, exitError, text)
		}
		if want := "node " + f.names[1] + " on docker engine " + engine + ": "; !strings.Contains(text, want) {
			t.Errorf("the failure does not say %q:\n%s", want, text)
		}
	case <-time.After(120 * time.Second):
		t.Fatal("the rotator did not end with its node's engine unreachable")
	}
	j := f.journal()
	if j.Phase == rotation.PhaseDone || j.Phase == rotation.PhaseRolledBack || j.RotationID == "" || j.PendingKey.IsZero() {
		t.Fatalf("journal phase %s (rotation %q): want an unfinished rotation a rerun resumes", j.Phase, j.RotationID)
	}
	pending := j.PendingKey
	if err := fw.Restore(); err != nil {
		t.Fatal(err)
	}
	// The rerun resumes the journal: it finishes the rotation or its rollback.
	code, text := f.rotator("rotate")
	if code != exitOK && code != exitRolledBack {
		t.Fatalf("the rerun exited %d once the engine was back, want %d or %d:\n%s", code, exitOK, exitRolledBack, text)
	}
	if j := f.journal(); j.Phase != rotation.PhaseDone && j.Phase != rotation.PhaseRolledBack {
		t.Errorf("journal phase %s after the rerun, want done or rolled back", j.Phase)
	}
	stranger, _ := rotation.NewKey()
	cur := f.current()
	if cur.Key.Equal(k1) {
		f.assertKeys(k1, pending, stranger)
	} else {
		f.assertKeys(cur.Key, k1, stranger)
	}
	// And the deployment rotates across both engines again.
	if code, text := f.rotator("rotate"); code != exitOK {
		t.Fatalf("a rotation after the engine came back exited %d:\n%s", code, text)
	}
	next := f.current()
	f.assertKeys(next.Key, k1, pending, cur.Key, stranger)
	if code, text := f.rotator("verify"); code != exitOK {
		t.Errorf("verify exited %d:\n%s", code, text)
	}
	f.assertNoLeak(cur.Key, next.Key, pending)
}

// TestLabelAcrossEngines: a deployment selected by label finds its nodes on every engine it names (its default
// engine and those of docker_hosts), and rotates them all.
func TestLabelAcrossEngines(t *testing.T) {
	d, second := secondEngine(t)
	f := newFixture(t, fixtureOpts{nodes: 2, mode: "env", engines: map[int]*harness.Harness{1: second}})
	cfg, err := os.ReadFile(f.config)
	if err != nil {
		t.Fatal(err)
	}
	// Every container the harnesses of this test process made carries its pid: exactly the fixture's two nodes.
	label := fmt.Sprintf("label: io.qdrant-rotator.owner-pid=%d", os.Getpid())
	listed := "containers: [" + strings.Join(f.names, ", ") + "]"
	if !strings.Contains(string(cfg), listed) {
		t.Fatalf("the fixture's config has no %q", listed)
	}
	if err := os.WriteFile(f.config, []byte(strings.Replace(string(cfg), listed, label, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	f.addDockerHosts(map[string]string{f.names[1]: fmt.Sprintf("{host: %q, tls_verify: true, cert_path: %s}", d.TCPHost, d.CertDir)})
	p := f.startProber()
	code, out := f.rotator("rotate")
	res := p.Stop()
	if code != exitOK {
		t.Fatalf("rotate exited %d:\n%s", code, out)
	}
	for _, name := range f.names {
		if !strings.Contains(out, name) {
			t.Errorf("the rotation never names node %s:\n%s", name, out)
		}
	}
	if res.Rejected != 0 || res.Accepted < 10 {
		t.Errorf("prober: %s", res)
	}
	f.assertKeys(f.current().Key, f.k1)
	f.assertOnEngine(f.names[1], second)
	f.assertNoLeak(f.current().Key)
}
