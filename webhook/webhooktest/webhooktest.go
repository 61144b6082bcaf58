// Package webhooktest gives tests GitHub's published webhook payloads from the shared
// conformance folder, and signs deliveries the way GitHub does.
package webhooktest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagely/stagely/webhook"
)

// EnvDir overrides where the conformance folder (the one holding webhooks/) is.
const EnvDir = "STAGELY_CONFORMANCE_DIR"

// Dir finds the shared conformance folder: $STAGELY_CONFORMANCE_DIR, or shared/conformance
// beside the checkout (found by walking up from the test's directory). A missing folder
// fails the test: these payloads are the point of the tests that use them.
func Dir(tb testing.TB) string {
	tb.Helper()
	if dir := os.Getenv(EnvDir); dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			tb.Fatalf("resolve %s=%q: %v", EnvDir, dir, err)
		}
		return abs
	}
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		candidate := filepath.Join(dir, "shared", "conformance")
		if info, err := os.Stat(filepath.Join(candidate, "webhooks")); err == nil && info.IsDir() {
			return candidate
		}
		if filepath.Dir(dir) == dir {
			tb.Fatalf("conformance webhook payloads not found in shared/conformance beside any parent of %s (set %s to the folder holding webhooks/)", wd, EnvDir)
			return ""
		}
	}
}

// Payload is one published payload; Event is its folder name, the X-GitHub-Event value.
type Payload struct {
	Event string
	Name  string
	Path  string
	Body  []byte
}

// Payloads returns every published payload, read byte for byte.
func Payloads(tb testing.TB) []Payload {
	tb.Helper()
	root := filepath.Join(Dir(tb), "webhooks")
	var out []Payload
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out = append(out, Payload{Event: filepath.Base(filepath.Dir(path)), Name: d.Name(), Path: path, Body: body})
		return nil
	})
	if err != nil {
		tb.Fatalf("walk %s: %v", root, err)
	}
	if len(out) == 0 {
		tb.Fatalf("no payloads under %s", root)
	}
	return out
}

// Request builds a delivery of body as GitHub sends it, signed with secret.
func Request(event, deliveryID string, secret, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/github", strings.NewReader(string(body)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(webhook.HeaderEvent, event)
	r.Header.Set(webhook.HeaderDelivery, deliveryID)
	r.Header.Set(webhook.HeaderSignature256, webhook.Sign(secret, body))
	r.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
	return r
}
