package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stagely/stagely/app/metrics"
)

func TestWebhook_LabelsOnlyKnownEventsByName(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, event, label string }{
		{"known event", "push", "push"},
		{"unknown event", "star", "other"},
		{"empty event", "", "other"},
		{"invented name", "evil\x1b[31m", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := metrics.New(func() int { return 0 }, []string{"push", "ping"})
			m.Webhook(tt.event, "rejected")
			rec := httptest.NewRecorder()
			m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			want := `stagely_webhooks_total{event="` + tt.label + `",outcome="rejected"} 1`
			if !strings.Contains(rec.Body.String(), want) {
				t.Fatalf("scrape lacks %s", want)
			}
			if n := strings.Count(rec.Body.String(), "stagely_webhooks_total{"); n != 1 {
				t.Fatalf("%d webhook series, want 1", n)
			}
		})
	}
}
