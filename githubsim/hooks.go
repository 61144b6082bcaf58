package githubsim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// deliveryRetention is how long GitHub keeps a webhook's deliveries: "GitHub keeps a log of
// webhook deliveries for 3 days".
const deliveryRetention = 72 * time.Hour

// docsHookDeliveries is the documentation_url of the App webhook delivery endpoints.
const docsHookDeliveries = "https://docs.github.com/rest/apps/webhooks"

// cursorPrefix starts the opaque cursors GitHub hands out in the Link header of
// GET /app/hook/deliveries ("v1_12077215967"); the number is the last attempt of the page.
const cursorPrefix = "v1_"

// listHookDeliveries serves GET /app/hook/deliveries: the App webhook's attempts of the last
// three days, newest first, paged by cursor (per_page default 30, at most 100), optionally only
// those whose status_code is 200-399 (status=success) or 400-599 (status=failure).
func (s *Sim) listHookDeliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	perPage := 30
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeValidation(w, docsHookDeliveries, fieldError{Resource: "Hook", Field: "per_page", Code: "invalid"})
			return
		}
		perPage = min(n, 100)
	}
	before := int64(-1)
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseInt(strings.TrimPrefix(v, cursorPrefix), 10, 64)
		if !strings.HasPrefix(v, cursorPrefix) || err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "Invalid cursor", docsHookDeliveries)
			return
		}
		before = n
	}
	status := q.Get("status")
	if status != "" && status != "success" && status != "failure" {
		writeValidation(w, docsHookDeliveries, fieldError{Resource: "Hook", Field: "status", Code: "invalid"})
		return
	}
	s.mu.Lock()
	horizon := s.now().Add(-deliveryRetention)
	var items []any
	var last int64
	more := false
	for i := len(s.st.deliveries) - 1; i >= 0; i-- {
		d := s.st.deliveries[i]
		if d.At.Before(horizon) || (before >= 0 && d.AttemptID >= before) || !statusMatches(status, d.StatusCode) {
			continue
		}
		if len(items) == perPage {
			more = true
			break
		}
		items = append(items, hookDeliveryItem(d))
		last = d.AttemptID
	}
	s.mu.Unlock()
	if more {
		next := &url.URL{Scheme: "http", Host: r.Host, Path: "/app/hook/deliveries"}
		nq := next.Query()
		nq.Set("per_page", strconv.Itoa(perPage))
		nq.Set("cursor", cursorPrefix+strconv.FormatInt(last, 10))
		if status != "" {
			nq.Set("status", status)
		}
		next.RawQuery = nq.Encode()
		w.Header().Set("Link", fmt.Sprintf("<%s>; rel=\"next\"", next))
	}
	if items == nil {
		items = []any{}
	}
	writeJSON(w, http.StatusOK, items)
}

// statusMatches applies the status filter as GitHub's description words it: success is a
// status_code of 200-399, failure 400-599; an attempt that got no answer (0) is neither.
func statusMatches(filter string, code int) bool {
	switch filter {
	case "success":
		return code >= 200 && code < 400
	case "failure":
		return code >= 400 && code < 600
	}
	return true
}

// getHookDelivery serves GET /app/hook/deliveries/{delivery_id}: one attempt with the request
// that was sent and the answer that came back.
func (s *Sim) getHookDelivery(w http.ResponseWriter, r *http.Request) {
	d, ok := s.attempt(w, r)
	if !ok {
		return
	}
	body := hookDeliveryItem(d)
	var payload any
	if err := json.Unmarshal(d.Body, &payload); err != nil {
		payload = nil
	}
	body["url"] = d.URL
	body["request"] = obj{"headers": flatHeader(d.Header), "payload": payload}
	var respHeaders, respPayload any
	if d.ResponseHeader != nil {
		respHeaders, respPayload = flatHeader(d.ResponseHeader), string(d.ResponseBody)
	}
	body["response"] = obj{"headers": respHeaders, "payload": respPayload}
	writeJSON(w, http.StatusOK, body)
}

// redeliverHookDelivery serves POST /app/hook/deliveries/{delivery_id}/attempts: GitHub answers
// 202 Accepted and makes the new attempt afterwards, with the same GUID and body.
func (s *Sim) redeliverHookDelivery(w http.ResponseWriter, r *http.Request) {
	d, ok := s.attempt(w, r)
	if !ok {
		return
	}
	again := redeliveryOf(d)
	s.outbox.push(func(ctx context.Context) {
		// The outcome is recorded with the attempt; there is nobody to return an error to.
		_, _ = s.send(ctx, again)
	})
	writeJSON(w, http.StatusAccepted, obj{})
}

// attempt finds the attempt named by the delivery_id path value, or answers 404.
func (s *Sim) attempt(w http.ResponseWriter, r *http.Request) (*Delivery, bool) {
	id, err := strconv.ParseInt(r.PathValue("delivery_id"), 10, 64)
	if err == nil {
		s.mu.Lock()
		i := sort.Search(len(s.st.deliveries), func(i int) bool { return s.st.deliveries[i].AttemptID >= id })
		var d *Delivery
		if i < len(s.st.deliveries) && s.st.deliveries[i].AttemptID == id && !s.st.deliveries[i].At.Before(s.now().Add(-deliveryRetention)) {
			cp := *s.st.deliveries[i]
			d = &cp
		}
		s.mu.Unlock()
		if d != nil {
			return d, true
		}
	}
	writeError(w, http.StatusNotFound, "Not Found", docsHookDeliveries)
	return nil, false
}

// hookDeliveryItem is GitHub's hook-delivery-item for one attempt.
func hookDeliveryItem(d *Delivery) obj {
	var action, inst, repo any
	if d.Action != "" {
		action = d.Action
	}
	if d.InstallationID != 0 {
		inst = d.InstallationID
	}
	if d.RepositoryID != 0 {
		repo = d.RepositoryID
	}
	return obj{
		"id":              d.AttemptID,
		"guid":            d.ID,
		"delivered_at":    iso(d.At),
		"redelivery":      d.Redelivery,
		"duration":        d.Duration.Seconds(),
		"status":          d.Status,
		"status_code":     d.StatusCode,
		"event":           d.Event,
		"action":          action,
		"installation_id": inst,
		"repository_id":   repo,
		"throttled_at":    nil,
	}
}

// flatHeader writes headers as GitHub's delivery log shows them: one string per name.
func flatHeader(h http.Header) obj {
	out := obj{}
	for k, vs := range h {
		out[k] = strings.Join(vs, ", ")
	}
	return out
}

// outbox makes the attempts GitHub promised with a 202 one after another, in the order they
// were asked for, each on a goroutine that ends when the queue is empty; close stops it.
type outbox struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	queue   []func(context.Context)
	running bool
	wg      sync.WaitGroup
}

func newOutbox() *outbox {
	ctx, cancel := context.WithCancel(context.Background())
	return &outbox{ctx: ctx, cancel: cancel}
}

func (o *outbox) push(f func(context.Context)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ctx.Err() != nil {
		return
	}
	o.queue = append(o.queue, f)
	if !o.running {
		o.running = true
		o.wg.Add(1)
		go o.drain()
	}
}

func (o *outbox) drain() {
	defer o.wg.Done()
	for {
		o.mu.Lock()
		if len(o.queue) == 0 || o.ctx.Err() != nil {
			o.queue, o.running = nil, false
			o.mu.Unlock()
			return
		}
		f := o.queue[0]
		o.queue = o.queue[1:]
		o.mu.Unlock()
		f(o.ctx)
	}
}

// close drops what is still queued, cancels the attempt in flight and waits for it.
func (o *outbox) close() {
	o.cancel()
	o.wg.Wait()
}
