package apptest

import (
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// Site is a gin router behind a test HTTP server whose public URL is known before it starts,
// so the handlers mounted on it can be told where they live (auth's and setup's PublicURL).
type Site struct {
	Router *gin.Engine
	Server *httptest.Server
	// URL is the site's public URL, https:// when the site serves TLS.
	URL string
	tls bool
}

// NewSite makes an unstarted Site; mount the handlers on Router, then Start it.
func NewSite(tls bool) *Site {
	gin.SetMode(gin.TestMode)
	s := &Site{Router: gin.New(), tls: tls}
	s.Server = httptest.NewUnstartedServer(s.Router)
	scheme := "http"
	if tls {
		scheme = "https"
	}
	s.URL = scheme + "://" + s.Server.Listener.Addr().String()
	return s
}

// Start serves the site until the test ends.
func (s *Site) Start(t testing.TB) {
	if s.tls {
		s.Server.StartTLS()
	} else {
		s.Server.Start()
	}
	t.Cleanup(s.Server.Close)
}

// Browser is a client that keeps cookies and follows redirects, like a person's browser;
// rt nil means http.DefaultTransport.
func Browser(t testing.TB, rt http.RoundTripper) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Transport: rt, Timeout: 20 * time.Second}
}

// StopAt is c, but it does not follow a redirect to path: it returns that redirect.
func StopAt(c *http.Client, path string) *http.Client {
	stop := *c
	stop.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == path {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return &stop
}

// NoRedirects is a client that returns every redirect instead of following it.
func NoRedirects() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// ReadBody reads and closes resp's body.
func ReadBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return string(b)
}

// WantPage reads and closes resp's body and fails t unless resp answered status with a body
// that contains text; what says which answer it was.
func WantPage(t testing.TB, resp *http.Response, status int, text, what string) {
	t.Helper()
	if body := ReadBody(t, resp); resp.StatusCode != status || !strings.Contains(body, text) {
		t.Fatalf("%s: %d %q; want %d with %q", what, resp.StatusCode, body, status, text)
	}
}
