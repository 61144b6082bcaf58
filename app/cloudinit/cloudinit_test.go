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
		{"defaults", cloudinit.Params{ServerURL: "https://stagely.example.com", Token: "stg_1_abc", AgentImage: "ghcr.io/stagely/agent:latest"}},
		{"hostile token and custom data dir", cloudinit.Params{ServerURL: "http://10.0.0.5:8080/stagely/", Token: hostileToken, AgentImage: "registry.local:5000/agent@sha256:0123", DataDir: "/srv/stagely"}},
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
	doc := render(t, cloudinit.Params{ServerURL: "https://stagely.example.com/", Token: hostileToken, AgentImage: "img:1"})
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

func TestRender_InstallsDockerThenRunsTheAgentWithSocketDataDirAndRestartPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		dataDir string
		wantDir string
		wantEnv bool
	}{
		{"default data dir", "", "/var/lib/stagely", false},
		{"custom data dir is passed to the agent", "/srv/stagely", "/srv/stagely", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := parse(t, render(t, cloudinit.Params{ServerURL: "https://s.example", Token: "stg_1_x", AgentImage: "ghcr.io/stagely/agent:v1", DataDir: tt.dataDir}))
			if !p.PackageUpdate || !slices.Contains(p.Packages, "docker.io") {
				t.Errorf("packages = %v (update %v), want docker.io after an update", p.Packages, p.PackageUpdate)
			}
			var run []string
			for _, c := range p.RunCmd {
				if len(c) > 1 && c[0] == "docker" && c[1] == "run" {
					run = c
				}
			}
			if run == nil {
				t.Fatalf("no docker run in runcmd: %q", p.RunCmd)
			}
			joined := " " + strings.Join(run, " ") + " "
			for _, want := range []string{
				" --name stagely-agent ",
				" --restart unless-stopped ",
				" --stop-timeout 180 ",
				" -v /var/run/docker.sock:/var/run/docker.sock ",
				" -v " + tt.wantDir + ":" + tt.wantDir + " ",
				" -v /etc/stagely:/etc/stagely:ro ",
			} {
				if !strings.Contains(joined, want) {
					t.Errorf("docker run lacks %q: %q", strings.TrimSpace(want), run)
				}
			}
			if got := strings.Contains(joined, " -e STAGELY_DATA_DIR="+tt.wantDir+" "); got != tt.wantEnv {
				t.Errorf("STAGELY_DATA_DIR passed = %v, want %v: %q", got, tt.wantEnv, run)
			}
			if run[len(run)-1] != "ghcr.io/stagely/agent:v1" {
				t.Errorf("last argument = %q, want the image", run[len(run)-1])
			}
		})
	}
}

func TestRender_RefusesParametersThatWouldBreakTheAgent(t *testing.T) {
	t.Parallel()
	ok := cloudinit.Params{ServerURL: "https://s.example", Token: "stg_1_x", AgentImage: "img"}
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
		{"image that is a docker flag", func(p *cloudinit.Params) { p.AgentImage = "--privileged" }, "image"},
		{"relative data dir", func(p *cloudinit.Params) { p.DataDir = "stagely" }, "data dir"},
		{"data dir with a colon", func(p *cloudinit.Params) { p.DataDir = "/a:/etc" }, "data dir"},
		{"root as data dir", func(p *cloudinit.Params) { p.DataDir = "/" }, "data dir"},
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
