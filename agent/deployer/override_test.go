package deployer

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/stagely/stagely/agent/protocol"
)

func TestServiceEnv_ScopedSecretWinsOverGlobalAndStaysInItsService(t *testing.T) {
	t.Parallel()
	env, skipped := serviceEnv([]protocol.Secret{
		{Key: "A", Value: "scoped", Scope: "api"},
		{Key: "A", Value: "global", Scope: protocol.ScopeGlobal},
		{Key: "B", Value: "only-api", Scope: "api"},
		{Key: "C", Value: "nowhere", Scope: "gone"},
	}, []string{"api", "web"})
	if env["api"]["A"] != "scoped" || env["web"]["A"] != "global" || env["api"]["B"] != "only-api" {
		t.Errorf("env = %v", env)
	}
	if _, ok := env["web"]["B"]; ok {
		t.Error("web got api's scoped secret")
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0], "C") {
		t.Errorf("skipped = %v", skipped)
	}
}

func TestRenderOverride_EscapesDollarsAndRoundTripsValues(t *testing.T) {
	t.Parallel()
	values := map[string]string{
		"D": "a$b$$c${X}", "N": "l1\nl2\n", "Q": `"' :#-`, "U": "✓ 日本", "S": " x ", "E": "",
	}
	out, err := renderOverride(map[string]map[string]string{"api": values}, false)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	for k, v := range values {
		if got := back.Services["api"].Environment[k]; got != strings.ReplaceAll(v, "$", "$$") {
			t.Errorf("%s = %q, want %q", k, got, strings.ReplaceAll(v, "$", "$$"))
		}
	}
}

func TestMasker_MasksValuesAndEachLineButNotShortOnes(t *testing.T) {
	t.Parallel()
	m := newMasker([]protocol.Secret{
		{Value: "hunter22"}, {Value: "hunter22-long"}, {Value: "abc"}, {Value: "-----BEGIN-----\nMIIsecretline\n-----END-----"},
	})
	tests := map[string]string{
		"password is hunter22-long!": "password is ***!",
		"hunter22 and abc":           "*** and abc",
		"MIIsecretline":              "***",
		"nothing here":               "nothing here",
	}
	for in, want := range tests {
		if got := m.mask(in); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
}
