// Package web serves the dashboard SPA built from this folder (npm run build -> dist/) out of the
// server binary: real files from dist, index.html for every other dashboard path.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// dist is the Vite build. If the compiler says "pattern all:dist: no matching files found", the
// SPA has not been built: run `cd web && npm ci && npm run build` (make test and make build do).
//
//go:embed all:dist
var dist embed.FS

const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
	// The SPA loads only its own hashed bundle and talks only to its own origin; avatars come from
	// GitHub (or githubsim in tests), so images may come from anywhere.
	contentSecurityPolicy = "default-src 'self'; img-src * data:; object-src 'none'; base-uri 'self'; " +
		"form-action 'self'; frame-ancestors 'none'"
)

type file struct {
	body        []byte
	etag        string
	contentType string
	cache       string
}

// SPA is an http.Handler for the built dashboard.
type SPA struct {
	files map[string]file // by slash path without the leading "/", e.g. "assets/index-Ab12.js"
	index file
}

var _ http.Handler = (*SPA)(nil)

// Handler returns the dashboard built into this binary.
func Handler() (*SPA, error) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, fmt.Errorf("open embedded dist: %w", err)
	}
	return New(sub)
}

// New serves the SPA in files, a Vite build's output folder (index.html at its root, hashed
// bundles under assets/). Everything is read once here, so serving never touches files again.
func New(files fs.FS) (*SPA, error) {
	s := &SPA{files: map[string]file{}}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(files, p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		sum := sha256.Sum256(body)
		f := file{
			body:        body,
			etag:        `"` + hex.EncodeToString(sum[:16]) + `"`,
			contentType: contentType(p, body),
			cache:       cacheRevalidate,
		}
		// Vite names everything under assets/ by content hash, so a name never changes meaning.
		if strings.HasPrefix(p, "assets/") {
			f.cache = cacheImmutable
		}
		s.files[p] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load SPA files: %w", err)
	}
	index, ok := s.files["index.html"]
	if !ok {
		return nil, errors.New("load SPA files: no index.html; build the dashboard with `cd web && npm ci && npm run build`")
	}
	s.index = index
	return s, nil
}

// contentType names the types a Vite build emits itself, so answers do not depend on the host's
// /etc/mime.types (which mime.TypeByExtension reads); anything else falls back to it, then sniffing.
func contentType(name string, body []byte) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json", ".map":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".woff2":
		return "font/woff2"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return http.DetectContentType(body)
}

// ServeHTTP answers GET and HEAD with a file from the build, or with index.html for any other path
// that is neither a server route nor a missing bundle file, so /projects/12 loads the dashboard.
func (s *SPA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := path.Clean("/" + r.URL.Path)
	if isServerPath(p) {
		notFound(w)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(p, "/")
	f, ok := s.files[name]
	switch {
	case ok:
	case strings.HasPrefix(name, "assets/"):
		// A bundle from an older build: answering index.html would be parsed as JavaScript.
		http.Error(w, http.StatusText(http.StatusNotFound), http.StatusNotFound)
		return
	default:
		f = s.index
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", f.cache)
	h.Set("ETag", f.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(f.contentType, "text/html") {
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Referrer-Policy", "same-origin")
	}
	// ServeContent handles HEAD, If-None-Match and Range; the zero time leaves Last-Modified out.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}

// isServerPath reports whether p is under one of the server's own routes (DESIGN.md §7). Such a path
// reached this handler because it matched no route, and must stay a 404 rather than become the
// dashboard: a mistyped API call answered with HTML would fail confusingly.
func isServerPath(p string) bool {
	for _, prefix := range [...]string{"/api", "/auth", "/agent", "/webhooks", "/setup", "/healthz", "/readyz", "/metrics"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

// notFound answers in the API's error shape (docs/api.md), since most such requests come from code.
func notFound(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"message":"no such endpoint"}` + "\n"))
}
