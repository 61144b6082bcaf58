package stagelyyaml_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/app/stagelyyaml"
)

func TestParse_PreviewReadsEveryField(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, "preview:\n  domain: \"*.Preview.Example.com\"\n  services:\n    web: 8080\n    api: 3000\n  max_previews: 2\n  stop_after: 48h\n  shared: [pgdata, /var/run/docker.sock]\n")
	pv := cfg.Preview
	if !pv.Set || pv.Domain != "preview.example.com" || pv.MaxPreviews != 2 || pv.StopAfter != 48*time.Hour {
		t.Fatalf("preview = %+v", pv)
	}
	if strings.Join(pv.Shared, ",") != "pgdata,/var/run/docker.sock" {
		t.Fatalf("preview shared = %q", pv.Shared)
	}
	if len(pv.Services) != 2 || pv.Services["web"].Port != 8080 || pv.Services["api"].Port != 3000 {
		t.Fatalf("preview services = %+v", pv.Services)
	}
}

func TestParse_PreviewDefaults(t *testing.T) {
	t.Parallel()
	pv := mustParse(t, "preview:\n  domain: preview.example.com\n").Preview
	if pv.MaxPreviews != stagelyyaml.DefaultMaxPreviews || pv.StopAfter != stagelyyaml.DefaultStopAfter || len(pv.Services) != 0 {
		t.Fatalf("preview = %+v, want the documented defaults", pv)
	}
	if mustParse(t, "version: \"1.0\"\n").Preview.Set {
		t.Fatal("a file without preview: has its preview set")
	}
}

func TestParse_PreviewRejectsWithPosition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, input string
		line        int
		fragment    string
	}{
		{"domain with a scheme", "preview:\n  domain: https://preview.example.com\n", 2, `preview.domain "https://preview.example.com" is not a domain name`},
		{"port out of range", "preview:\n  services:\n    web: 70000\n", 3, "preview.services.web is 70000; it must be between 1 and 65535"},
		{"port as text", "preview:\n  services:\n    web: \"80\"\n", 3, "preview.services.web must be a whole number"},
		{"max_previews zero", "preview:\n  max_previews: 0\n", 2, "preview.max_previews is 0; it must be between 1 and 50"},
		{"stop_after too short", "preview:\n  stop_after: 5s\n", 2, "preview.stop_after is 5s; it must be between 1m and 2160h"},
		{"unknown key", "preview:\n  domian: x.example.com\n", 2, `unknown key "domian" in preview (did you mean "domain"?)`},
		{"not a mapping", "preview: yes\n", 1, "preview must be a mapping"},
		{"shared not a list", "preview:\n  shared: pgdata\n", 2, "preview.shared must be a list"},
		{"shared item empty", "preview:\n  shared: [pgdata, \"\"]\n", 2, "preview.shared[1] is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, problems := stagelyyaml.Parse([]byte(tc.input))
			if len(problems) != 1 || problems[0].Line != tc.line || !strings.Contains(problems[0].Message, tc.fragment) {
				t.Fatalf("problems = %v, want one on line %d containing %q", problems, tc.line, tc.fragment)
			}
		})
	}
}

func TestValidatePreview(t *testing.T) {
	t.Parallel()
	const compose = "services:\n  web:\n    image: nginx\n  db:\n    image: postgres\n    container_name: shop-db\n"
	services, err := stagelyyaml.ParseComposeServices("compose.yaml", []byte(compose))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, config string
		want         []string
	}{
		{"no preview section", "", []string{"has no preview: section", `service "db" sets container_name`}},
		{"no domain", "preview:\n  services: {web: 80}\n", []string{"preview has no domain", "container_name"}},
		{"unknown service", "preview:\n  domain: p.example.com\n  services: {wbe: 80}\n", []string{`preview.services.wbe names a service compose.yaml does not define (did you mean "web"?)`, "container_name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, tc.config)
			problems := stagelyyaml.ValidatePreview(cfg, services, "compose.yaml")
			if len(problems) != len(tc.want) {
				t.Fatalf("problems = %v, want %d", problems, len(tc.want))
			}
			for i, p := range problems {
				if p.Level != stagelyyaml.LevelFailure || !strings.Contains(p.Message, tc.want[i]) {
					t.Errorf("problem %d = %v, want a failure containing %q", i, p, tc.want[i])
				}
			}
			if last := problems[len(problems)-1]; last.Path != "compose.yaml" || last.Line != 6 {
				t.Errorf("container_name problem at %s:%d, want compose.yaml:6", last.Path, last.Line)
			}
		})
	}
	ok := mustParse(t, "preview:\n  domain: p.example.com\n  services: {web: 80}\n")
	web := map[string]stagelyyaml.ComposeService{"web": services["web"]}
	if problems := stagelyyaml.ValidatePreview(ok, web, "compose.yaml"); len(problems) != 0 {
		t.Fatalf("a good preview has problems %v", problems)
	}
}

func TestPreviewHost(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("verylongprojectname", 4)
	tests := []struct {
		name, service, project string
		number                 int
		want                   string
	}{
		{"plain", "web", "shop", 7, "web--pr-7--shop.preview.example.com"},
		{"characters DNS refuses", "Web_App.v2", "My Shop", 12, "web-app-v2--pr-12--my-shop.preview.example.com"},
		{"long project cut with a hash", "web", long, 7, "web--pr-7--verylongprojectnameverylongprojectnameveryl-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := stagelyyaml.PreviewHost(tc.service, tc.number, tc.project, "preview.example.com")
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("PreviewHost = %q, want it to start with %q", got, tc.want)
			}
			label, _, _ := strings.Cut(got, ".")
			if len(label) > 63 {
				t.Fatalf("label %q is %d bytes, more than DNS allows", label, len(label))
			}
		})
	}
	a := stagelyyaml.PreviewHost("web", 7, long+"a", "p.example.com")
	b := stagelyyaml.PreviewHost("web", 7, long+"b", "p.example.com")
	if a == b {
		t.Fatalf("two long project names share the host %q", a)
	}
}
