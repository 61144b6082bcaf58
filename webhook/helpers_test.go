package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stagely/stagely/webhook/webhooktest"
)

var testSecret = []byte("stagely-test-secret")

// conformanceDir is the shared conformance folder; see webhooktest.Dir.
func conformanceDir(t testing.TB) string { return webhooktest.Dir(t) }

// payloadFile is one published payload; Event is its folder name, the X-GitHub-Event value.
type payloadFile struct {
	Event string
	Name  string
	Path  string
}

func conformancePayloads(t testing.TB) []payloadFile {
	t.Helper()
	var files []payloadFile
	for _, p := range webhooktest.Payloads(t) {
		files = append(files, payloadFile{Event: p.Event, Name: p.Name, Path: p.Path})
	}
	return files
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return b
}

// sign computes X-Hub-Signature-256 independently of the package under test.
func sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// deliveryRequest builds a request the way GitHub sends one.
func deliveryRequest(event, id string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
	r.Header.Set("X-GitHub-Event", event)
	r.Header.Set("X-GitHub-Delivery", id)
	r.Header.Set("X-GitHub-Hook-ID", "292430182")
	r.Header.Set("X-GitHub-Hook-Installation-Target-ID", "79929171")
	r.Header.Set("X-GitHub-Hook-Installation-Target-Type", "integration")
	r.Header.Set("X-Hub-Signature-256", sign(testSecret, body))
	return r
}

// doc is a payload parsed without go-github, to check decoded values against.
type doc struct{ v any }

func parseDoc(t testing.TB, body []byte) doc {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("parse payload: %v", err)
	}
	return doc{v}
}

// get follows a dotted path; absent keys and nulls give a doc holding nil.
func (d doc) get(path string) doc {
	cur := d.v
	for _, key := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return doc{}
		}
		cur = m[key]
	}
	return doc{cur}
}

func (d doc) null() bool { return d.v == nil }

func (d doc) str() string {
	s, _ := d.v.(string)
	return s
}

func (d doc) boolean() bool {
	b, _ := d.v.(bool)
	return b
}

func (d doc) int(t testing.TB) int64 {
	t.Helper()
	if d.v == nil {
		return 0
	}
	n, ok := d.v.(json.Number)
	if !ok {
		t.Fatalf("want a number, got %T %v", d.v, d.v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("number %s: %v", n, err)
	}
	return i
}

func (d doc) list() []doc {
	items, _ := d.v.([]any)
	out := make([]doc, len(items))
	for i, item := range items {
		out[i] = doc{item}
	}
	return out
}

func check[T comparable](t *testing.T, field string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", field, got, want)
	}
}
