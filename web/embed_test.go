package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stagely/stagely/web"
)

// embedded returns the handler for the build compiled into this test binary, with the paths of
// the hashed bundles index.html refers to.
func embedded(t *testing.T) (h *web.SPA, index string, js string, css string) {
	t.Helper()
	h, err := web.Handler()
	if err != nil {
		t.Fatalf("the embedded dashboard is unusable (build it: cd web && npm ci && npm run build): %v", err)
	}
	rec := serve(h, http.MethodGet, "/", nil)
	index = rec.Body.String()
	js = regexp.MustCompile(`/assets/[^"]+\.js`).FindString(index)
	css = regexp.MustCompile(`/assets/[^"]+\.css`).FindString(index)
	if js == "" || css == "" {
		t.Fatalf("index.html names no hashed bundle (js %q, css %q); is dist a Vite build?\n%s", js, css, index)
	}
	return h, index, js, css
}

func serve(h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandler_ServesFilesAndFallsBackToIndex(t *testing.T) {
	t.Parallel()
	h, index, js, css := embedded(t)

	tests := []struct {
		name        string
		method      string
		target      string
		status      int
		contentType string
		cache       string
		body        string // "" means: not checked here
	}{
		{"root is index.html, revalidated every time", "GET", "/", 200, "text/html; charset=utf-8", "no-cache", index},
		{"index.html by name is not cached either", "GET", "/index.html", 200, "text/html; charset=utf-8", "no-cache", index},
		{"a dashboard route falls back to index.html", "GET", "/projects/12", 200, "text/html; charset=utf-8", "no-cache", index},
		{"an unknown dashboard path falls back too", "GET", "/no/such/page", 200, "text/html; charset=utf-8", "no-cache", index},
		{"a query string does not stop the fallback", "GET", "/agents?tab=1", 200, "text/html; charset=utf-8", "no-cache", index},
		{"dot segments cannot leave dist", "GET", "/../../embed.go", 200, "text/html; charset=utf-8", "no-cache", index},
		{"the hashed script is immutable", "GET", js, 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", ""},
		{"the hashed stylesheet is immutable", "GET", css, 200, "text/css; charset=utf-8", "public, max-age=31536000, immutable", ""},
		{"an unhashed public file is revalidated", "GET", "/favicon.svg", 200, "image/svg+xml", "no-cache", ""},
		{"a bundle from an older build is 404, not HTML", "GET", "/assets/index-Gone1234.js", 404, "", "", ""},
		{"an unknown API path stays 404", "GET", "/api/unknown", 404, "application/json; charset=utf-8", "no-store", `{"message":"no such endpoint"}` + "\n"},
		{"the API root stays 404", "GET", "/api", 404, "application/json; charset=utf-8", "no-store", ""},
		{"an unknown auth path stays 404", "GET", "/auth/nope", 404, "application/json; charset=utf-8", "no-store", ""},
		{"agent paths stay 404", "GET", "/agent/other", 404, "application/json; charset=utf-8", "no-store", ""},
		{"webhook paths stay 404", "POST", "/webhooks/gitlab", 404, "application/json; charset=utf-8", "no-store", ""},
		{"setup paths stay 404", "GET", "/setup/x", 404, "application/json; charset=utf-8", "no-store", ""},
		{"health paths stay 404", "GET", "/healthz/deep", 404, "application/json; charset=utf-8", "no-store", ""},
		{"readiness paths stay 404", "GET", "/readyz/x", 404, "application/json; charset=utf-8", "no-store", ""},
		{"metrics paths stay 404", "GET", "/metrics/x", 404, "application/json; charset=utf-8", "no-store", ""},
		{"a prefix that only looks like a server route falls back", "GET", "/apix", 200, "text/html; charset=utf-8", "no-cache", index},
		{"writes to dashboard paths are refused", "POST", "/projects", 405, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := serve(h, tt.method, tt.target, nil)
			if rec.Code != tt.status {
				t.Fatalf("%s %s: status %d, want %d; body %q", tt.method, tt.target, rec.Code, tt.status, rec.Body.String())
			}
			if tt.contentType != "" {
				if got := rec.Header().Get("Content-Type"); got != tt.contentType {
					t.Errorf("Content-Type %q, want %q", got, tt.contentType)
				}
			}
			if tt.cache != "" {
				if got := rec.Header().Get("Cache-Control"); got != tt.cache {
					t.Errorf("Cache-Control %q, want %q", got, tt.cache)
				}
			}
			if tt.body != "" && rec.Body.String() != tt.body {
				t.Errorf("body %q, want %q", rec.Body.String(), tt.body)
			}
		})
	}
}

func TestHandler_ScriptIsTheBuiltBundle(t *testing.T) {
	t.Parallel()
	h, _, js, _ := embedded(t)
	rec := serve(h, http.MethodGet, js, nil)
	// React's production build always carries this; index.html would not.
	if body := rec.Body.String(); !strings.Contains(body, "react") || strings.Contains(body, "<!doctype html>") {
		t.Fatalf("%s does not look like the JavaScript bundle: %.200q", js, body)
	}
	if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options %q, want nosniff", got)
	}
}

func TestHandler_HEADAnswersLikeGETWithoutBody(t *testing.T) {
	t.Parallel()
	h, _, js, _ := embedded(t)
	for _, target := range []string{"/", "/projects/12", js} {
		get := serve(h, http.MethodGet, target, nil)
		head := serve(h, http.MethodHead, target, nil)
		if head.Code != http.StatusOK {
			t.Fatalf("HEAD %s: status %d", target, head.Code)
		}
		if head.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d body bytes, want none", target, head.Body.Len())
		}
		for _, k := range []string{"Content-Type", "Content-Length", "Cache-Control", "ETag"} {
			if head.Header().Get(k) != get.Header().Get(k) {
				t.Errorf("HEAD %s: %s %q, GET has %q", target, k, head.Header().Get(k), get.Header().Get(k))
			}
		}
	}
}

func TestHandler_IndexRevalidatesWithETag(t *testing.T) {
	t.Parallel()
	h, _, _, _ := embedded(t)
	first := serve(h, http.MethodGet, "/projects/3", nil)
	etag := first.Header().Get("ETag")
	if etag == "" {
		t.Fatal("index.html has no ETag, so no-cache would mean downloading it every time")
	}
	again := serve(h, http.MethodGet, "/agents", http.Header{"If-None-Match": {etag}})
	if again.Code != http.StatusNotModified {
		t.Fatalf("revalidating with the ETag: status %d, want 304", again.Code)
	}
}

func TestHandler_IndexCarriesContentSecurityPolicy(t *testing.T) {
	t.Parallel()
	h, _, js, _ := embedded(t)
	csp := serve(h, http.MethodGet, "/projects/1", nil).Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if got := serve(h, http.MethodGet, js, nil).Header().Get("Content-Security-Policy"); got != "" {
		t.Errorf("the script carries a page policy %q; only HTML needs one", got)
	}
}

func TestNew_BuildWithoutIndexIsRefused(t *testing.T) {
	t.Parallel()
	_, err := web.New(fstest.MapFS{"assets/index-Ab12.js": {Data: []byte("x")}})
	if err == nil || !strings.Contains(err.Error(), "npm run build") {
		t.Fatalf("New without index.html: err %v, want one that says how to build", err)
	}
}

func TestNew_ServesAnyViteLikeFolder(t *testing.T) {
	t.Parallel()
	h, err := web.New(fstest.MapFS{
		"index.html":            {Data: []byte("<!doctype html><title>x</title>")},
		"assets/index-Ab12.js":  {Data: []byte("console.log(1)")},
		"assets/logo-Cd34.png":  {Data: []byte("\x89PNG\r\n\x1a\n")},
		"assets/chunk-Ef56.mjs": {Data: []byte("export {}")},
		"robots.txt":            {Data: []byte("User-agent: *\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, target, contentType, cache, body string }{
		{"hashed script", "/assets/index-Ab12.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "console.log(1)"},
		{"hashed module chunk", "/assets/chunk-Ef56.mjs", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "export {}"},
		{"hashed image", "/assets/logo-Cd34.png", "image/png", "public, max-age=31536000, immutable", "\x89PNG\r\n\x1a\n"},
		{"unhashed public file", "/robots.txt", "text/plain; charset=utf-8", "no-cache", "User-agent: *\n"},
		{"dashboard route", "/projects/12", "text/html; charset=utf-8", "no-cache", "<!doctype html><title>x</title>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := serve(h, http.MethodGet, tt.target, nil)
			body, err := io.ReadAll(rec.Body)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != tt.contentType || rec.Header().Get("Cache-Control") != tt.cache {
				t.Errorf("GET %s: %d %q %q, want 200 %q %q", tt.target, rec.Code,
					rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"), tt.contentType, tt.cache)
			}
			if string(body) != tt.body {
				t.Errorf("GET %s: body %q, want %q", tt.target, body, tt.body)
			}
		})
	}
}
