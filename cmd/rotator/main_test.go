package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		noStdout bool
	}{
		{name: "version", args: []string{"version"}, code: exitOK, stdout: "rotator dev\n"},
		{name: "--version", args: []string{"--version"}, code: exitOK, stdout: "rotator dev\n"},
		{name: "--help", args: []string{"--help"}, code: exitOK, stdout: "Usage:\n  rotator <command>"},
		{name: "-h", args: []string{"-h"}, code: exitOK, stdout: "Commands:"},
		{name: "no args", args: nil, code: exitUsage, stderr: "Usage:", noStdout: true},
		{name: "unknown", args: []string{"frobnicate"}, code: exitUsage, stderr: `unknown command "frobnicate"`, noStdout: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, func(string) string { return "" }, &out, &errOut)
			if code != tc.code {
				t.Errorf("exit code = %d, want %d", code, tc.code)
			}
			if !strings.Contains(out.String(), tc.stdout) {
				t.Errorf("stdout = %q, want it to contain %q", out.String(), tc.stdout)
			}
			if !strings.Contains(errOut.String(), tc.stderr) {
				t.Errorf("stderr = %q, want it to contain %q", errOut.String(), tc.stderr)
			}
			if tc.noStdout && out.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", out.String())
			}
		})
	}
}
