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
	"path/filepath"
	"strings"
	"testing"
)

var testSecret = []byte("stagely-test-secret")

// conformanceDir finds /work/shared/conformance: the checkout's parent holds shared/,
// so from this package directory it is ../../shared/conformance unless overridden.
// A missing folder fails the test: these payloads are the point of the suite.
func conformanceDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("STAGELY_CONFORMANCE_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "conformance")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("resolve conformance dir %q: %v", dir, err)
	}
	info, err := os.Stat(filepath.Join(abs, "webhooks"))
	if err != nil || !info.IsDir() {
		t.Fatalf("conformance webhook payloads not found at %s/webhooks (set STAGELY_CONFORMANCE_DIR to the folder holding webhooks/): %v", abs, err)
	}
	return abs
}

// payloadFile is one published payload; Event is its folder name, the X-GitHub-Event value.
type payloadFile struct {
	Event string
	Name  string
	Path  string
}

func conformancePayloads(t testing.TB) []payloadFile {
	t.Helper()
	root := filepath.Join(conformanceDir(t), "webhooks")
	var files []payloadFile
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".json") {
			return nil
		}
		files = append(files, payloadFile{
			Event: filepath.Base(filepath.Dir(path)),
			Name:  d.Name(),
			Path:  path,
		})
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
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
