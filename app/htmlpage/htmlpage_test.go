package htmlpage_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/htmlpage"
)

func TestWrite_AnswersThePageInItsShellWithAPolicyThatAllowsNoScript(t *testing.T) {
	t.Parallel()
	page := htmlpage.Must("t", "p{color:red}", "<p>{{.Message}}</p>\n")
	tests := []struct {
		name       string
		data       any
		formAction string
		wantStatus int
		wantBody   []string
		wantCSP    string
	}{
		{"no forms", struct{ Title, Message string }{"Signed out", "<b>bye</b>"}, "", http.StatusUnauthorized,
			[]string{"<!doctype html>", "<title>Signed out · Stagely</title>", "<style>p{color:red}</style>", "<p>&lt;b&gt;bye&lt;/b&gt;</p>", "</body></html>"},
			"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"},
		{"forms posting here and to GitHub", struct{ Title, Message string }{"Setup", "hi"}, "'self' https://github.com", http.StatusOK,
			[]string{"<p>hi</p>"},
			"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self' https://github.com"},
		{"a template that fails", struct{ Title string }{"Broken"}, "", http.StatusInternalServerError,
			[]string{"fallback text"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(rec)
			htmlpage.Write(c, tt.wantStatus, page, tt.data, tt.formAction, "fallback text")
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			for _, want := range tt.wantBody {
				if !strings.Contains(rec.Body.String(), want) {
					t.Errorf("body lacks %q:\n%s", want, rec.Body)
				}
			}
			if got := rec.Header().Get("Content-Security-Policy"); got != tt.wantCSP {
				t.Errorf("Content-Security-Policy %q, want %q", got, tt.wantCSP)
			}
		})
	}
}
