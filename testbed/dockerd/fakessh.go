package dockerd

import (
	"os"
	"path/filepath"
	"testing"
)

// FakeSSH puts an `ssh` on PATH (for the rest of the test) that runs what a real one would run on the remote host,
// `docker system dial-stdio`, against host (a unix:// socket of this machine), and logs its arguments to the file it
// returns: the rotator's real ssh:// code path, without an ssh server.
func FakeSSH(t testing.TB, host string) (logFile string) {
	t.Helper()
	dir := t.TempDir()
	logFile = filepath.Join(dir, "ssh.log")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + logFile + "\nexec docker -H " + host + " system dial-stdio\n"
	if err := os.WriteFile(filepath.Join(dir, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return logFile
}
