package apptest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagely/stagely/app/apptest"
)

func TestPrebuiltBinaries_TakesAllThreeVariablesOrNoneAndOnlyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	server, agent := filepath.Join(dir, "stagely-server"), filepath.Join(dir, "stagely-agent")
	for _, p := range []string{server, agent} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantOK  bool
		wantErr string
	}{
		{"none named: the test builds its own", nil, false, ""},
		{"both named", map[string]string{apptest.EnvServerBin: server, apptest.EnvAgentBin: agent, apptest.EnvBinVersion: "v1"}, true, ""},
		{"only the server", map[string]string{apptest.EnvServerBin: server, apptest.EnvBinVersion: "v1"}, false, "set all three or none"},
		{"only the agent", map[string]string{apptest.EnvAgentBin: agent, apptest.EnvBinVersion: "v1"}, false, "set all three or none"},
		{"no version", map[string]string{apptest.EnvServerBin: server, apptest.EnvAgentBin: agent}, false, "set all three or none"},
		{"a missing file", map[string]string{apptest.EnvServerBin: server, apptest.EnvAgentBin: filepath.Join(dir, "nope"), apptest.EnvBinVersion: "v1"}, false, "run make build"},
		{"a directory", map[string]string{apptest.EnvServerBin: dir, apptest.EnvAgentBin: agent, apptest.EnvBinVersion: "v1"}, false, "is not a file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, ok, err := apptest.PrebuiltBinaries(func(k string) string { return tt.env[k] })
			if ok != tt.wantOK || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("PrebuiltBinaries = %+v, %v, %v; want ok %v and an error containing %q", b, ok, err, tt.wantOK, tt.wantErr)
			}
			if ok && (b.Server != server || b.Agent != agent || b.Version != "v1") {
				t.Fatalf("PrebuiltBinaries = %+v, want %s, %s, v1", b, server, agent)
			}
		})
	}
}
