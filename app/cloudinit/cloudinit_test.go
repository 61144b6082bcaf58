package cloudinit_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stagely/stagely/app/cloudinit"
)

// hostileToken passes the renderer's checks yet holds every character that breaks naive YAML
// or JSON templating.
const hostileToken = `stg_7_a"b'c#d{e}[f]:g\h&i*j!k|l>m%n@o` + "`p"

// schemaCheck runs Debian's cloud-init validator on doc; a missing validator fails the test.
func schemaCheck(t *testing.T, doc string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("cloud-init")
	if err != nil {
		t.Fatalf("the cloud-init command is not installed, so the cloud-config cannot be validated: run `apt-get install -y cloud-init` (make deps does)")
	}
	f := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "schema", "--config-file", f).CombinedOutput()
	return string(out), err
}

func render(t *testing.T, p cloudinit.Params) string {
	t.Helper()
	doc, err := cloudinit.Render(p)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return doc
}

func TestRender_PassesCloudInitSchema(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    cloudinit.Params
	}{
		{"defaults", cloudinit.Params{ServerURL: "https://stagely.example.com", Token: "stg_1_abc"}},
		{"hostile token and a path prefix", cloudinit.Params{ServerURL: "http://10.0.0.5:8080/stagely/", Token: hostileToken}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := render(t, tt.p)
			if out, err := schemaCheck(t, doc); err != nil || !strings.Contains(out, "Valid cloud-config") {
				t.Fatalf("cloud-init schema refused the document (%v):\n%s\n--- document ---\n%s", err, out, doc)
			}
		})
	}
}

// The validator must be able to fail, or the test above proves nothing.
func TestSchemaCheck_RefusesABrokenDocument(t *testing.T) {
	t.Parallel()
	if out, err := schemaCheck(t, "#cloud-config\nruncmd: 5\n"); err == nil {
		t.Fatalf("cloud-init schema accepted runcmd: 5:\n%s", out)
	}
}

type parsed struct {
	PackageUpdate bool     `yaml:"package_update"`
	Packages      []string `yaml:"packages"`
	WriteFiles    []struct {
		Path, Owner, Permissions, Content string
	} `yaml:"write_files"`
	RunCmd [][]string `yaml:"runcmd"`
}

func parse(t *testing.T, doc string) parsed {
	t.Helper()
	if !strings.HasPrefix(doc, "#cloud-config\n") {
		t.Fatalf("document does not start with #cloud-config:\n%s", doc)
	}
	var p parsed
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("parse rendered YAML: %v\n%s", err, doc)
	}
	return p
}

func TestRender_ConfigFileIsRootOnly0600AndHoldsTheExactToken(t *testing.T) {
	t.Parallel()
	doc := render(t, cloudinit.Params{ServerURL: "https://stagely.example.com/", Token: hostileToken})
	p := parse(t, doc)
	if len(p.WriteFiles) != 1 {
		t.Fatalf("write_files has %d entries, want 1", len(p.WriteFiles))
	}
	wf := p.WriteFiles[0]
	if wf.Path != "/etc/stagely/config.json" || wf.Permissions != "0600" || wf.Owner != "root:root" {
		t.Errorf("write_files entry = path %q permissions %q owner %q, want /etc/stagely/config.json 0600 root:root", wf.Path, wf.Permissions, wf.Owner)
	}
	var cfg map[string]string
	dec := json.NewDecoder(strings.NewReader(wf.Content))
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("config.json does not parse: %v\n%s", err, wf.Content)
	}
	want := map[string]string{"server_url": "https://stagely.example.com", "token": hostileToken}
	if len(cfg) != 2 || cfg["server_url"] != want["server_url"] || cfg["token"] != want["token"] {
		t.Errorf("config.json = %v, want %v", cfg, want)
	}
	for i, cmd := range p.RunCmd {
		if slices.ContainsFunc(cmd, func(a string) bool { return strings.Contains(a, "stg_") }) {
			t.Errorf("runcmd[%d] carries the token (it would show in ps and docker inspect): %q", i, cmd)
		}
	}
}

func TestRender_RunsTheServersInstallerWithTheURLAsAnArgument(t *testing.T) {
	t.Parallel()
	// A URL a shell would expand if it were spliced into the command string.
	const serverURL = "https://s.example/$(reboot)"
	p := parse(t, render(t, cloudinit.Params{ServerURL: serverURL + "/", Token: "stg_1_x"}))
	if !p.PackageUpdate || !slices.Equal(p.Packages, []string{"curl"}) {
		t.Errorf("packages = %v (update %v), want curl after an update, nothing distribution-specific", p.Packages, p.PackageUpdate)
	}
	if len(p.RunCmd) != 1 {
		t.Fatalf("runcmd = %q, want the one installer command", p.RunCmd)
	}
	run := p.RunCmd[0]
	if len(run) != 5 || run[0] != "sh" || run[1] != "-c" || run[4] != serverURL {
		t.Fatalf("runcmd[0] = %q, want [sh -c SCRIPT NAME %s]", run, serverURL)
	}
	script := run[2]
	for _, want := range []string{`curl -fsSL`, `"$1/install.sh"`, `&& sh `} {
		if !strings.Contains(script, want) {
			t.Errorf("installer command %q lacks %q", script, want)
		}
	}
	if strings.Contains(script, "s.example") || strings.Contains(strings.Join(run, " "), "docker run") {
		t.Errorf("the URL is spliced into the shell script, or a container image is still run: %q", run)
	}
}

func TestRender_RefusesParametersThatWouldBreakTheAgent(t *testing.T) {
	t.Parallel()
	ok := cloudinit.Params{ServerURL: "https://s.example", Token: "stg_1_x"}
	tests := []struct {
		name   string
		change func(*cloudinit.Params)
		want   string
	}{
		{"empty server URL", func(p *cloudinit.Params) { p.ServerURL = "" }, "server URL"},
		{"websocket scheme", func(p *cloudinit.Params) { p.ServerURL = "wss://s.example" }, "server URL"},
		{"credentials in URL", func(p *cloudinit.Params) { p.ServerURL = "https://u:p@s.example" }, "server URL"},
		{"empty token", func(p *cloudinit.Params) { p.Token = "" }, "token"},
		{"newline in token", func(p *cloudinit.Params) { p.Token = "stg_1_x\nruncmd: [reboot]" }, "token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := ok
			tt.change(&p)
			_, err := cloudinit.Render(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render error = %v, want one naming the %s", err, tt.want)
			}
		})
	}
}
