package dockerd

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/qdrantrotator/rotator/qdrantctl"
)

// TestSecondEngineAnswersOverEveryScheme starts a second dockerd and reaches it as the rotator does: over its unix
// socket, over tcp:// with TLS client certificates (and not without them), and over ssh:// (through a fake ssh that
// runs `docker system dial-stdio`).
func TestSecondEngineAnswersOverEveryScheme(t *testing.T) {
	d := StartT(t, Options{TLS: true})
	ctx := context.Background()
	logFile := FakeSSH(t, d.Host)
	for _, addr := range []qdrantctl.EngineAddress{
		{Host: d.Host},
		{Host: d.TCPHost, TLSVerify: true, CertPath: d.CertDir},
		{Host: "ssh://rotator@127.0.0.1:2222"},
	} {
		e, err := qdrantctl.DialEngine(ctx, addr)
		if err != nil {
			t.Errorf("engine %s: %v", addr, err)
			continue
		}
		if names, err := e.ContainersByLabel(ctx, "io.qdrant-rotator.none"); err != nil || len(names) != 0 {
			t.Errorf("engine %s: list = %v, %v", addr, names, err)
		}
		if e.Name() != addr.String() || e.PublishHost() != "127.0.0.1" {
			t.Errorf("engine %s: name %q, publish host %q", addr, e.Name(), e.PublishHost())
		}
		e.Close()
	}
	if _, err := qdrantctl.DialEngine(ctx, qdrantctl.EngineAddress{Host: d.TCPHost}); err == nil {
		t.Errorf("engine %s answered a client without a certificate", d.TCPHost)
	} else if !strings.Contains(err.Error(), "docker engine "+d.TCPHost) {
		t.Errorf("the error does not name the engine: %v", err)
	}
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(log); !strings.Contains(s, "-l rotator") || !strings.Contains(s, "-p 2222") ||
		!strings.Contains(s, "-- 127.0.0.1 docker system dial-stdio") {
		t.Errorf("ssh ran with %q; want -l rotator -p 2222 ... -- 127.0.0.1 docker system dial-stdio", s)
	}
}
