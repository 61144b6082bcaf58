package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun_RefusesBadCommandLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined"},
		{"extra argument", []string{"now"}, `unexpected argument "now"`},
		{"port out of range", []string{"--port", "70000", "--server-bin", built.Server, "--agent-bin", built.Agent}, "--port 70000"},
		{"missing server binary", []string{"--server-bin", "/nonexistent/stagely-server", "--agent-bin", built.Agent}, "make build"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := run(context.Background(), tc.args, os.Getenv, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRun_HelpPrintsUsageAndSucceeds(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, os.Getenv, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "--non-interactive") {
		t.Errorf("usage:\n%s", out.String())
	}
}

func TestResetWorkdir_RefusesAForeignDirectoryAndClearsItsOwn(t *testing.T) {
	t.Parallel()
	foreign := t.TempDir()
	if err := os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := resetWorkdir(foreign); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("err = %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(foreign, "notes.txt")); err != nil {
		t.Fatalf("a foreign file was touched: %v", err)
	}

	own := filepath.Join(t.TempDir(), "demo")
	if err := resetWorkdir(own); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(own, "server.log"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := resetWorkdir(own); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(own, "server.log")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the last run's log survived: %v", err)
	}
}

func TestShellWords_ExpandsArgsAndRefusesShellOperators(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"VERSION": "v1.2.3"}
	got, err := shellWords(`CGO_ENABLED=0 go build -ldflags "-s -w -X main.version=${VERSION}" -o '/out/x y' ./cmd/$VERSION`, vars)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CGO_ENABLED=0", "go", "build", "-ldflags", "-s -w -X main.version=v1.2.3", "-o", "/out/x y", "./cmd/v1.2.3"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for _, bad := range []string{"go build && rm -rf /", `go build "unclosed`, "go build ${NOPE}"} {
		if _, err := shellWords(bad, vars); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
