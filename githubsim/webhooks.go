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
	"net/http"
	"strconv"
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

// Delivery is one webhook delivery attempt as sent, with the receiver's answer.
type Delivery struct {
	ID           string
	Event        string
	Action       string
	Body         []byte
	Header       http.Header
	StatusCode   int    // 0 when the request could not be made
	ResponseBody []byte // the first 64 KiB
	Err          string // transport error, if any
	At           time.Time
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
	return s.send(ctx, &Delivery{ID: guid(), Event: event, Action: action, Body: body})
}

// Redeliver sends a past delivery again: the same bytes and the same X-GitHub-Delivery id, as
// GitHub's "Redeliver" does.
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
	return s.send(ctx, &Delivery{ID: orig.ID, Event: orig.Event, Action: orig.Action, Body: orig.Body})
}

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
	d.Header = h
	d.At = s.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(d.Body))
	if err != nil {
		return nil, fmt.Errorf("build %s delivery: %w", d.Event, err)
	}
	req.Header = h.Clone()
	resp, err := s.client.Do(req)
	if err != nil {
		d.Err = err.Error()
	} else {
		d.StatusCode = resp.StatusCode
		d.ResponseBody, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}
	s.mu.Lock()
	s.st.deliveries = append(s.st.deliveries, d)
	s.mu.Unlock()
	s.log.Info("webhook delivered", "event", d.Event, "action", d.Action, "delivery", d.ID, "status", d.StatusCode)
	cp := *d
	if err != nil {
		return &cp, fmt.Errorf("deliver %s %s: %w", d.Event, d.ID, err)
	}
	return &cp, nil
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
