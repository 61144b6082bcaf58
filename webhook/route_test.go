package webhook_test

import (
	"errors"
	"testing"

	"github.com/stagely/stagely/webhook"
)

func TestRoute_ReadsTheTopLevelFactsOrSaysThePayloadIsMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		want    webhook.Route
		invalid bool
	}{
		{"repository event", `{"action":"opened","installation":{"id":7},"repository":{"id":42,"full_name":"acme/site"}}`,
			webhook.Route{Event: "e", Action: "opened", InstallationID: 7, RepoID: 42, RepoFullName: "acme/site"}, false},
		{"installation event names no repository", `{"action":"created","installation":{"id":7},"repositories":[{"id":42}]}`,
			webhook.Route{Event: "e", Action: "created", InstallationID: 7}, false},
		{"repository webhook names no installation", `{"ref":"refs/heads/main","repository":{"id":42,"full_name":"acme/site"}}`,
			webhook.Route{Event: "e", RepoID: 42, RepoFullName: "acme/site"}, false},
		{"null installation and repository", `{"installation":null,"repository":null}`, webhook.Route{Event: "e"}, false},
		{"JSON null", `null`, webhook.Route{Event: "e"}, false},
		{"not JSON", `payload=%7B%7D`, webhook.Route{Event: "e"}, true},
		{"an array", `[]`, webhook.Route{Event: "e"}, true},
		{"action of the wrong type", `{"action":1}`, webhook.Route{Event: "e"}, true},
		{"repository id of the wrong type", `{"repository":{"id":"42"}}`, webhook.Route{Event: "e"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := webhook.Delivery{Event: "e", Body: []byte(tt.body)}.Route()
			if tt.invalid != errors.Is(err, webhook.ErrPayloadMalformed) {
				t.Fatalf("err = %v, want ErrPayloadMalformed: %v", err, tt.invalid)
			}
			if tt.invalid && webhook.KindOf(err) != webhook.KindInvalid {
				t.Fatalf("kind %s, want %s", webhook.KindOf(err), webhook.KindInvalid)
			}
			check(t, "Route()", got, tt.want)
		})
	}
}
