// Package intake takes GitHub webhook deliveries in: it checks them, records each once in
// PostgreSQL and answers GitHub at once; a worker then processes them from the database, so
// a crash right after the answer loses nothing.
package intake

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// Recorder stores deliveries.
type Recorder interface {
	RecordDelivery(ctx context.Context, d store.NewDelivery) (store.Delivery, bool, error)
}

// Metrics counts webhooks by event and outcome.
type Metrics interface {
	Webhook(event, outcome string)
}

// Handler serves POST /webhooks/github.
type Handler struct {
	store  Recorder
	secret func(ctx context.Context) ([]byte, error)
	poke   func()
	log    *slog.Logger
	met    Metrics
}

// NewHandler builds the webhook endpoint. secret returns the App's webhook secret (from the
// environment or from /setup); poke wakes the worker.
func NewHandler(st Recorder, secret func(ctx context.Context) ([]byte, error), poke func(), log *slog.Logger, met Metrics) *Handler {
	return &Handler{store: st, secret: secret, poke: poke, log: log, met: met}
}

type reply struct {
	Message  string `json:"message"`
	Delivery string `json:"delivery,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, reply{Message: "webhooks are POSTed"})
		return
	}
	secret, err := h.secret(r.Context())
	if err != nil || len(secret) == 0 {
		h.log.Error("webhook received but no webhook secret is configured; finish /setup or set STAGELY_GITHUB_WEBHOOK_SECRET", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, reply{Message: "this Stagely server has no GitHub App configured yet"})
		return
	}
	d, err := webhook.ReadDelivery(r, secret, webhook.DefaultMaxBody)
	if err != nil {
		status := statusFor(err)
		event := r.Header.Get(webhook.HeaderEvent)
		h.count(event, "rejected")
		// The headers of a rejected request are the sender's: logged short and printable only.
		h.log.Warn("webhook rejected", "status", status, "event", forLog(event), "delivery", forLog(r.Header.Get(webhook.HeaderDelivery)), "err", err)
		writeJSON(w, status, reply{Message: err.Error()})
		return
	}
	// A payload whose route cannot be read is recorded all the same: the worker decodes it,
	// rejects it and keeps the reason as its decision, where the user can see it.
	route, _ := d.Route()
	_, created, err := h.store.RecordDelivery(r.Context(), store.NewDelivery{
		DeliveryID: d.ID, Event: d.Event, Action: route.Action, Payload: d.Body,
		InstallationID: nonZero(route.InstallationID), RepositoryID: nonZero(route.RepoID),
	})
	if err != nil {
		h.log.Error("record webhook delivery", "delivery", d.ID, "err", err)
		// 5xx makes GitHub show the failure; the user can redeliver it.
		writeJSON(w, http.StatusInternalServerError, reply{Message: "could not record the delivery; redeliver it from the App's advanced settings"})
		return
	}
	if !created {
		h.count(d.Event, "duplicate")
		writeJSON(w, http.StatusOK, reply{Message: "duplicate of an earlier delivery: not processed again", Delivery: d.ID})
		return
	}
	h.count(d.Event, "accepted")
	h.poke()
	writeJSON(w, http.StatusAccepted, reply{Message: "accepted", Delivery: d.ID})
}

// nonZero is nil for GitHub's "none" id, 0, so the column says NULL.
func nonZero(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

func (h *Handler) count(event, outcome string) {
	if h.met != nil {
		h.met.Webhook(event, outcome)
	}
}

// maxLoggedHeader bounds how much of a header value an unauthenticated request gets into the
// log: a GUID is 36 bytes, the longest event name GitHub sends is shorter than 64.
const maxLoggedHeader = 64

// forLog is v cut to maxLoggedHeader bytes, with every byte that is not printable ASCII
// replaced by '?', so no sender writes escape sequences or fake lines into a log.
func forLog(v string) string {
	n := min(len(v), maxLoggedHeader)
	b := make([]byte, n, n+24)
	for i := range n {
		if c := v[i]; c >= 0x20 && c < 0x7f {
			b[i] = c
		} else {
			b[i] = '?'
		}
	}
	if len(v) > n {
		b = fmt.Appendf(b, "…(%d bytes)", len(v))
	}
	return string(b)
}

func statusFor(err error) int {
	switch webhook.KindOf(err) {
	case webhook.KindUnauthorized:
		return http.StatusUnauthorized
	case webhook.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case webhook.KindMisconfigured:
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
