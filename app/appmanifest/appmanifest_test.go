package appmanifest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stagely/stagely/app/appmanifest"
	"github.com/stagely/stagely/webhook/webhooktest"
)

// documentedKeys reads the parameter table of GitHub's manifest page (the conformance
// extract), so the test follows GitHub's documentation rather than our memory of it.
func documentedKeys(t *testing.T) (top, hook []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(webhooktest.Dir(t), "app-manifest-params.md"))
	if err != nil {
		t.Fatalf("read GitHub's manifest parameters (shared/conformance beside the checkout, or STAGELY_CONFORMANCE_DIR): %v", err)
	}
	text := string(b)
	i := strings.Index(text, "`hook_attributes` keys:")
	if i < 0 {
		t.Fatal("conformance file has no hook_attributes table")
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|")
	for _, m := range row.FindAllStringSubmatch(text[:i], -1) {
		top = append(top, m[1])
	}
	for _, m := range row.FindAllStringSubmatch(text[i:], -1) {
		hook = append(hook, m[1])
	}
	if len(top) < 10 || len(hook) < 2 {
		t.Fatalf("parsed %d top-level and %d hook keys from the table", len(top), len(hook))
	}
	return top, hook
}

func TestRender_UsesOnlyDocumentedParametersWithRequiredOnesSet(t *testing.T) {
	t.Parallel()
	top, hook := documentedKeys(t)
	m, err := appmanifest.Render("https://stagely.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for k := range raw {
		if !slices.Contains(top, k) {
			t.Errorf("manifest key %q is not one of GitHub's documented parameters %v", k, top)
		}
	}
	var h map[string]json.RawMessage
	_ = json.Unmarshal(raw["hook_attributes"], &h)
	for k := range h {
		if !slices.Contains(hook, k) {
			t.Errorf("hook_attributes key %q is not documented", k)
		}
	}
	if m.URL != "https://stagely.example.com" || m.HookAttributes.URL != "https://stagely.example.com/webhooks/github" {
		t.Fatalf("required URLs: url=%q hook=%q", m.URL, m.HookAttributes.URL)
	}
	if m.RedirectURL != "https://stagely.example.com/setup/callback" ||
		!slices.Equal(m.CallbackURLs, []string{"https://stagely.example.com/auth/github/callback"}) ||
		m.SetupURL != "https://stagely.example.com/setup/installed" {
		t.Fatalf("redirect/callback/setup URLs: %q %q %q", m.RedirectURL, m.CallbackURLs, m.SetupURL)
	}
	if len(m.CallbackURLs) > 10 {
		t.Fatal("GitHub accepts at most 10 callback URLs")
	}
	if strings.Contains(string(b), "${") {
		t.Fatalf("an unfilled placeholder is left: %s", b)
	}
}

func TestRender_PermissionsAndEventsAreExactlyWhatStagelyNeeds(t *testing.T) {
	t.Parallel()
	m, err := appmanifest.Render("http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"contents": "read", "metadata": "read", "checks": "write", "statuses": "write", "deployments": "write", "pull_requests": "write"}
	if len(m.DefaultPermissions) != len(want) {
		t.Fatalf("permissions %v, want %v", m.DefaultPermissions, want)
	}
	for k, v := range want {
		if m.DefaultPermissions[k] != v {
			t.Fatalf("permission %s = %q, want %q", k, m.DefaultPermissions[k], v)
		}
	}
	events := slices.Clone(m.DefaultEvents)
	slices.Sort(events)
	if !slices.Equal(events, []string{"check_run", "check_suite", "pull_request", "push"}) {
		t.Fatalf("events %v", m.DefaultEvents)
	}
	if m.Public {
		t.Fatal("a self-hosted App should be private to its owner")
	}
}

func TestEvents_AreTheSubscribedOnesAndThoseEveryAppGets(t *testing.T) {
	t.Parallel()
	m, err := appmanifest.Render("http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	got := m.Events()
	slices.Sort(got)
	want := []string{"check_run", "check_suite", "github_app_authorization", "installation", "installation_repositories", "installation_target", "meta", "pull_request", "push"}
	if !slices.Equal(got, want) {
		t.Fatalf("Events() = %v, want %v", got, want)
	}
}

func TestRender_RefusesABadPublicURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "stagely.example.com", "ftp://x", "https://"} {
		if _, err := appmanifest.Render(u); err == nil {
			t.Errorf("Render(%q) accepted", u)
		}
	}
}
