package githubsim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// maxPayloadBytes is GitHub's cap: "Payloads are capped at 25 MB ... a webhook will not be fired."
const maxPayloadBytes = 25 << 20

// hookshotVersion stands in for the build id GitHub puts after "GitHub-Hookshot/".
const hookshotVersion = "githubsim"

var (
	// ErrNoWebhookURL is returned by the Send helpers when no webhook URL is set.
	ErrNoWebhookURL = errors.New("no webhook URL set")
	// ErrPayloadTooLarge is returned instead of delivering a payload over GitHub's 25 MB cap.
	ErrPayloadTooLarge = errors.New("payload over 25 MB: GitHub does not fire such a webhook")
)

// Delivery is one webhook delivery attempt as sent, with the receiver's answer: a row of the
// App's "Recent Deliveries" (GET /app/hook/deliveries).
type Delivery struct {
	// ID is the GUID sent as X-GitHub-Delivery; every redelivery of an event keeps it.
	ID string
	// AttemptID is GitHub's numeric "id" of this one attempt, unique and increasing.
	AttemptID int64
	// Redelivery is true for an attempt made by a redelivery rather than by the event itself.
	Redelivery bool
	Event      string
	Action     string
	// InstallationID and RepositoryID are read from the payload; 0 when it has none.
	InstallationID int64
	RepositoryID   int64
	Body           []byte
	Header         http.Header
	URL            string
	// StatusCode is the receiver's answer; 0 when there was none (refused, timed out).
	StatusCode int
	// Status is GitHub's word for the outcome: "OK", "Invalid HTTP Response: 503",
	// "failed to connect to network", "timed out" (see docs/githubsim.md).
	Status         string
	ResponseHeader http.Header
	ResponseBody   []byte // the first 64 KiB
	Err            string // transport error, if any
	At             time.Time
	Duration       time.Duration
}

// Deliveries returns every delivery attempt, oldest first (a redelivery is its own entry).
func (s *Sim) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, 0, len(s.st.deliveries))
	for _, d := range s.st.deliveries {
		out = append(out, *d)
	}
	return out
}

// deliver signs and posts an event to the App's webhook URL.
func (s *Sim) deliver(ctx context.Context, event string, payload obj) (*Delivery, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", event, err)
	}
	if len(body) > maxPayloadBytes {
		return nil, ErrPayloadTooLarge
	}
	action, _ := payload["action"].(string)
	inst, repo := payloadIDs(payload)
	return s.send(ctx, &Delivery{ID: guid(), Event: event, Action: action, InstallationID: inst, RepositoryID: repo, Body: body})
}

// payloadIDs reads installation.id and repository.id from a payload; 0 for what it lacks.
func payloadIDs(payload obj) (installationID, repositoryID int64) {
	idOf := func(key string) int64 {
		if o, ok := payload[key].(obj); ok {
			if id, ok := o["id"].(int64); ok {
				return id
			}
		}
		return 0
	}
	return idOf("installation"), idOf("repository")
}

// Redeliver sends a past delivery again: the same bytes and the same X-GitHub-Delivery id, as
// GitHub's "Redeliver" does; the attempt is a new Delivery with Redelivery set.
func (s *Sim) Redeliver(ctx context.Context, deliveryID string) (*Delivery, error) {
	s.mu.Lock()
	var orig *Delivery
	for _, d := range s.st.deliveries {
		if d.ID == deliveryID {
			orig = d
			break
		}
	}
	s.mu.Unlock()
	if orig == nil {
		return nil, fmt.Errorf("redeliver %s: no such delivery", deliveryID)
	}
	return s.send(ctx, redeliveryOf(orig))
}

// redeliveryOf is a new attempt at orig's event.
func redeliveryOf(orig *Delivery) *Delivery {
	return &Delivery{
		ID: orig.ID, Redelivery: true, Event: orig.Event, Action: orig.Action,
		InstallationID: orig.InstallationID, RepositoryID: orig.RepositoryID, Body: orig.Body,
	}
}

// send makes one delivery attempt and records it with its outcome, whatever that is: GitHub
// lists failed attempts too, and they are what a receiver recovers missed events from.
func (s *Sim) send(ctx context.Context, d *Delivery) (*Delivery, error) {
	s.mu.Lock()
	target, secret := s.st.app.webhookURL, s.st.app.webhookSecret
	appID, hookID := s.st.app.id, s.st.app.hookID
	s.mu.Unlock()
	if target == "" {
		return nil, ErrNoWebhookURL
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitHub-Hookshot/"+hookshotVersion)
	h.Set("X-GitHub-Event", d.Event)
	h.Set("X-GitHub-Delivery", d.ID)
	h.Set("X-GitHub-Hook-ID", strconv.FormatInt(hookID, 10))
	h.Set("X-GitHub-Hook-Installation-Target-ID", strconv.FormatInt(appID, 10))
	h.Set("X-GitHub-Hook-Installation-Target-Type", "integration")
	h.Set("X-Hub-Signature", "sha1="+signHex(sha1.New, secret, d.Body))
	h.Set("X-Hub-Signature-256", "sha256="+SignSHA256(secret, d.Body))
	d.Header, d.URL = h, target
	d.At = s.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(d.Body))
	if err != nil {
		return nil, fmt.Errorf("build %s delivery: %w", d.Event, err)
	}
	req.Header = h.Clone()
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		d.Err = err.Error()
	} else {
		d.StatusCode, d.ResponseHeader = resp.StatusCode, resp.Header
		d.ResponseBody, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}
	d.Duration = time.Since(start)
	d.Status = deliveryStatus(d.StatusCode, err)
	s.mu.Lock()
	d.AttemptID = s.st.id()
	s.st.deliveries = append(s.st.deliveries, d)
	s.mu.Unlock()
	s.log.Info("webhook delivered", "event", d.Event, "action", d.Action, "delivery", d.ID,
		"redelivery", d.Redelivery, "status", d.Status)
	cp := *d
	if err != nil {
		return &cp, fmt.Errorf("deliver %s %s: %w", d.Event, d.ID, err)
	}
	return &cp, nil
}

// deliveryStatus is the words GitHub's delivery log uses for an outcome: "OK" for a 2xx,
// "Invalid HTTP Response: 503" for any other answer, and for no answer at all the errors its
// troubleshooting page names: "failed to connect to network" when the receiver refused the
// connection, "timed out" after the 10 s limit, "failed to connect to host" otherwise.
func deliveryStatus(code int, err error) string {
	var dns *net.DNSError
	var ne net.Error
	switch {
	case err == nil && code >= 200 && code < 300:
		return "OK"
	case err == nil:
		return fmt.Sprintf("Invalid HTTP Response: %d", code)
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return "failed to connect to network"
	case errors.As(err, &dns):
		return "failed to connect to host"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	default:
		return "failed to connect to host"
	}
}

// SignSHA256 is the hex HMAC-SHA256 of body with secret, the value after "sha256=" in X-Hub-Signature-256.
func SignSHA256(secret string, body []byte) string {
	return signHex(sha256.New, secret, body)
}

func signHex(newHash func() hash.Hash, secret string, body []byte) string {
	m := hmac.New(newHash, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
