package agentdist_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stagely/stagely/app/agentdist"
)

// TestInstallScript_PreviewsOption: --previews is in the help, and it is refused with
// --root before anything is downloaded or installed, as it installs a system package.
func TestInstallScript_PreviewsOption(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, fstest.MapFS{agentdist.BinaryName("amd64"): {Data: []byte("x")}}, "", nil)
	_, script := get(t, srv.URL+"/install.sh")
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		want    string
	}{
		{"the help names it", []string{"--help"}, false, "--previews     also install Caddy"},
		{"it does not go with --root", []string{"--root", t.TempDir(), "--token", "stgb_1_abc", "--previews"}, true,
			"--previews installs and starts the caddy package on this machine, so it does not go with --root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// --help prints the script's own header, so the script runs from a file here.
			dir := t.TempDir()
			path := dir + "/install.sh"
			if err := os.WriteFile(path, script, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", append([]string{path}, tt.args...)...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if (err != nil) != tt.wantErr || !strings.Contains(out.String(), tt.want) {
				t.Fatalf("install.sh %v: err %v, output:\n%s\nwant it to say %q", tt.args, err, out.String(), tt.want)
			}
		})
	}
}
