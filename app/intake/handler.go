// Package intake takes GitHub webhook deliveries in: it checks them, records each once in
// PostgreSQL and answers GitHub at once; a worker then processes them from the database, so
// a crash right after the answer loses nothing.
package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/stagely/stagely/app/appcreds"

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
	limits Limits
	budget *semaphore.Weighted
}

// Limits bound what reading webhook bodies may cost; zero fields take the defaults below.
type Limits struct {
	// MaxBody is the largest body read; DefaultMaxBody (webhook.DefaultMaxBody).
	MaxBody int64
	// ReadTimeout bounds reading one body once its headers are in; DefaultReadTimeout.
	ReadTimeout time.Duration
	// ReadBudget bounds the bytes of the bodies being read and held at once: a request takes
	// its Content-Length from it (at least MinReadWeight; MaxBody when it declares none) until
	// it is answered; DefaultReadBudget.
	ReadBudget int64
	// BudgetWait is how long a request waits for budget before it is answered 503; DefaultBudgetWait.
	BudgetWait time.Duration
}

// Defaults of Limits.
const (
	DefaultMaxBody = webhook.DefaultMaxBody
	// DefaultReadTimeout is GitHub's own: it gives up on a delivery not answered in 10 s.
	DefaultReadTimeout = 10 * time.Second
	// DefaultReadBudget holds one delivery of the largest size GitHub sends and many small ones.
	DefaultReadBudget int64 = 32 << 20
	DefaultBudgetWait       = time.Second
	// MinReadWeight is what a small body takes from the budget, so the budget also bounds how
	// many bodies are read at once (128 with the defaults): a connection costs more than its bytes.
	MinReadWeight int64 = 256 << 10
)

// recordTimeout bounds recording a delivery.
const recordTimeout = 5 * time.Second

// RetryAfter is the Retry-After of a 503: the server is busy or its database is away.
const RetryAfter = "10"

// NewHandler builds the webhook endpoint with the default Limits. secret returns the App's
// webhook secret (from the environment or from /setup); poke wakes the worker.
func NewHandler(st Recorder, secret func(ctx context.Context) ([]byte, error), poke func(), log *slog.Logger, met Metrics) *Handler {
	return (&Handler{store: st, secret: secret, poke: poke, log: log, met: met}).WithLimits(Limits{})
}

// WithLimits sets the handler's limits, zero fields taking the defaults, and returns it; call
// it before the handler serves.
func (h *Handler) WithLimits(l Limits) *Handler {
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultMaxBody
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = DefaultReadTimeout
	}
	if l.ReadBudget <= 0 {
		l.ReadBudget = DefaultReadBudget
	}
	// One delivery of the largest size must fit, or it would wait for ever.
	l.ReadBudget = max(l.ReadBudget, l.MaxBody)
	if l.BudgetWait <= 0 {
		l.BudgetWait = DefaultBudgetWait
	}
	h.limits, h.budget = l, semaphore.NewWeighted(l.ReadBudget)
	return h
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
	// What needs no body is checked before anything is spent on it.
	if err := webhook.CheckBeforeBody(r, h.limits.MaxBody); err != nil {
		h.refuseUnread(w)
		h.reject(w, r, err)
		return
	}
	secret, err := h.secret(r.Context())
	if err != nil || len(secret) == 0 {
		h.refuseUnread(w)
	}
	switch {
	case (err == nil && len(secret) == 0) || errors.Is(err, appcreds.ErrNoApp):
		h.log.Error("webhook received but no webhook secret is configured; finish /setup or set STAGELY_GITHUB_WEBHOOK_SECRET")
		writeJSON(w, http.StatusServiceUnavailable, reply{Message: "this Stagely server has no GitHub App configured yet"})
		return
	case err != nil:
		h.log.Error("read the webhook secret; answered 503", "err", err)
		w.Header().Set("Retry-After", RetryAfter)
		writeJSON(w, http.StatusServiceUnavailable, reply{Message: "could not check the delivery now; redeliver it later"})
		return
	}
	release, ok := h.admit(w, r)
	if !ok {
		return
	}
	defer release()
	d, err := webhook.ReadDelivery(r, secret, h.limits.MaxBody)
	if err != nil {
		h.reject(w, r, err)
		return
	}
	h.record(w, r, d)
}

// admit takes the request's weight from the read budget and sets the deadline of its body.
// A request that finds no budget within BudgetWait is answered 503: its body is never read.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	weight := h.limits.MaxBody
	if r.ContentLength >= 0 {
		weight = max(r.ContentLength, MinReadWeight)
	}
	weight = min(weight, h.limits.ReadBudget)
	ctx, cancel := context.WithTimeout(r.Context(), h.limits.BudgetWait)
	defer cancel()
	if err := h.budget.Acquire(ctx, weight); err != nil {
		h.count(r.Header.Get(webhook.HeaderEvent), "busy")
		h.log.Warn("webhook refused: too many bodies being read", "event", forLog(r.Header.Get(webhook.HeaderEvent)), "delivery", forLog(r.Header.Get(webhook.HeaderDelivery)))
		w.Header().Set("Retry-After", RetryAfter)
		h.refuseUnread(w)
		writeJSON(w, http.StatusServiceUnavailable, reply{Message: "too many webhook deliveries at once; try again later"})
		return nil, false
	}
	// A sender that trickles its body is cut off at the deadline. A writer that cannot set
	// one (a test's recorder) has no connection to hold.
	if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.limits.ReadTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		h.log.Warn("set webhook read deadline", "err", err)
	}
	return func() { h.budget.Release(weight) }, true
}

// refuseUnread makes the answer to a request whose body is not read the last on its
// connection, and stops the body being read after it: left alone, net/http reads up to 256 KiB
// of what is left of a body, with no deadline, to keep the connection, so a sender trickling a
// small body would hold the connection (and its goroutine) as long as it likes.
func (h *Handler) refuseUnread(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	if err := http.NewResponseController(w).SetReadDeadline(time.Now()); err != nil && !errors.Is(err, http.ErrNotSupported) {
		h.log.Warn("end the read of an unread webhook body", "err", err)
	}
}

// reject answers a request that is not an acceptable delivery.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, err error) {
	status := statusFor(err)
	event := r.Header.Get(webhook.HeaderEvent)
	h.count(event, "rejected")
	// The headers of a rejected request are the sender's: logged short and printable only.
	h.log.Warn("webhook rejected", "status", status, "event", forLog(event), "delivery", forLog(r.Header.Get(webhook.HeaderDelivery)), "err", err)
	if status == http.StatusRequestTimeout || status == http.StatusRequestEntityTooLarge {
		w.Header().Set("Connection", "close")
	}
	writeJSON(w, status, reply{Message: err.Error()})
}

// record stores an authenticated delivery and answers GitHub.
func (h *Handler) record(w http.ResponseWriter, r *http.Request, d webhook.Delivery) {
	// A payload whose route cannot be read is recorded all the same: the worker decodes it,
	// rejects it and keeps the reason as its decision, where the user can see it.
	route, _ := d.Route()
	// GitHub waits 10 s for the answer; a database that hangs is answered like one that is down.
	ctx, cancel := context.WithTimeout(r.Context(), recordTimeout)
	defer cancel()
	_, created, err := h.store.RecordDelivery(ctx, store.NewDelivery{
		DeliveryID: d.ID, Event: d.Event, Action: route.Action, Payload: d.Body,
		InstallationID: nonZero(route.InstallationID), RepositoryID: nonZero(route.RepoID),
	})
	if err != nil {
		h.count(d.Event, "unavailable")
		h.log.Error("record webhook delivery; answered 503, GitHub lists it as failed until it is redelivered", "delivery", d.ID, "event", d.Event, "err", err)
		// 503 makes GitHub list the delivery as failed, where a redelivery (by hand, or by the
		// recovery of failed deliveries) finds it; nothing was recorded, so it is not a duplicate.
		w.Header().Set("Retry-After", RetryAfter)
		writeJSON(w, http.StatusServiceUnavailable, reply{Message: "could not record the delivery now; redeliver it later"})
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
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return http.StatusRequestTimeout
	}
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
