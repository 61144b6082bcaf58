package agentdist_test

import (
	"strings"
	"testing"
	"testing/fstest"

	stagely "github.com/stagely/stagely"
	"github.com/stagely/stagely/app/agentdist"
)

func TestVersion_ComesFromTheFileBesideTheBinaries(t *testing.T) {
	t.Parallel()
	bin := agentdist.BinaryName("amd64")
	cases := []struct {
		name    string
		file    *fstest.MapFile
		want    string
		wantErr string
	}{
		{"make build's file", &fstest.MapFile{Data: []byte("v1.4.0-2-gabcdef\n")}, "v1.4.0-2-gabcdef", ""},
		{"no file: version unknown, no self-update", nil, "", ""},
		{"empty file", &fstest.MapFile{Data: []byte("\n")}, "", "VERSION"},
		{"two words", &fstest.MapFile{Data: []byte("v1 v2")}, "", "one version"},
		{"too long", &fstest.MapFile{Data: []byte(strings.Repeat("v", 257))}, "", "at most 256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			files := fstest.MapFS{bin: {Data: []byte("\x7fELF")}}
			if tc.file != nil {
				files[agentdist.VersionFile] = tc.file
			}
			d, err := agentdist.New(agentdist.Options{PublicURL: "https://stagely.example", Unit: stagely.AgentUnit(), Files: files})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v, want an error about %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Version() != tc.want {
				t.Fatalf("Version() = %q, want %q", d.Version(), tc.want)
			}
		})
	}
}
