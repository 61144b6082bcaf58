package githubsim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stagely/stagely/githubsim"
)

// hookItem is the part of GitHub's hook-delivery-item the tests read.
type hookItem struct {
	ID             int64   `json:"id"`
	GUID           string  `json:"guid"`
	DeliveredAt    string  `json:"delivered_at"`
	Redelivery     bool    `json:"redelivery"`
	Status         string  `json:"status"`
	StatusCode     int     `json:"status_code"`
	Event          string  `json:"event"`
	Action         *string `json:"action"`
	InstallationID *int64  `json:"installation_id"`
	RepositoryID   *int64  `json:"repository_id"`
}

// listDeliveries fetches one page of GET /app/hook/deliveries with query and returns it with
// the URL of the next page ("" on the last).
func (f *fixture) listDeliveries(t *testing.T, query string) ([]hookItem, string) {
	t.Helper()
	resp, b := f.do(t, http.MethodGet, "app/hook/deliveries"+query, "Bearer "+f.jwt(t), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list deliveries%s: %d %s", query, resp.StatusCode, b)
	}
	var items []hookItem
	if err := json.Unmarshal(b, &items); err != nil {
		t.Fatal(err)
	}
	next := ""
	if m := regexp.MustCompile(`<([^>]+)>; rel="next"`).FindStringSubmatch(resp.Header.Get("Link")); m != nil {
		next = m[1]
	}
	return items, next
}

func TestHookDeliveries_EachAttemptIsLoggedWithItsOutcome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		target func(t *testing.T) string
		code   int
		status string
	}{
		{"a 2xx answer is OK", func(t *testing.T) string { return answering(t, http.StatusAccepted) }, 202, "OK"},
		{"a 5xx answer is an invalid HTTP response", func(t *testing.T) string { return answering(t, http.StatusServiceUnavailable) }, 503, "Invalid HTTP Response: 503"},
		{"a 4xx answer is an invalid HTTP response", func(t *testing.T) string { return answering(t, http.StatusUnauthorized) }, 401, "Invalid HTTP Response: 401"},
		{"a refused connection got no answer", func(t *testing.T) string { return "http://" + closedAddr(t) + "/hook" }, 0, "failed to connect to network"},
		{"no answer within the limit timed out", func(t *testing.T) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// Once the body is read, the server notices the client hanging up.
				_, _ = io.Copy(io.Discard, r.Body)
				<-r.Context().Done()
			}))
			t.Cleanup(srv.Close)
			return srv.URL
		}, 0, "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A short client timeout stands in for GitHub's 10 s; the receiver above never answers.
			sim := githubsim.New(githubsim.Options{PrivateKey: testKey(t), HTTPClient: &http.Client{Timeout: 300 * time.Millisecond}})
			sim.Start()
			t.Cleanup(sim.Close)
			sim.SetWebhookURL(tt.target(t))
			_, _ = sim.SendPing(ctx)
			ds := sim.Deliveries()
			if len(ds) != 1 {
				t.Fatalf("%d attempts logged, want 1", len(ds))
			}
			d := ds[0]
			if d.StatusCode != tt.code || d.Status != tt.status || d.Redelivery || d.AttemptID == 0 {
				t.Fatalf("logged status_code %d status %q redelivery %v id %d, want %d %q", d.StatusCode, d.Status, d.Redelivery, d.AttemptID, tt.code, tt.status)
			}
		})
	}
}

// answering is a webhook receiver that answers status to everything.
func answering(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestHookDeliveries_ListNewestFirstByCursorForThreeDays(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.receive(t, http.StatusBadGateway)
	for i := range 5 {
		if _, err := f.sim.Commit(ctx, repoWeb, "main", map[string][]byte{"n": []byte(strconv.Itoa(i))}, "push "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}

	var all []hookItem
	page, next := f.listDeliveries(t, "?per_page=2")
	all = append(all, page...)
	for pages := 1; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("pagination does not end")
		}
		if len(page) != 2 {
			t.Fatalf("page of %d items before the last, want per_page=2", len(page))
		}
		resp, b := doHTTP(t, http.DefaultClient, http.MethodGet, next, "Bearer "+f.jwt(t), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("next page %s: %d %s", next, resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		next = ""
		if m := regexp.MustCompile(`<([^>]+)>; rel="next"`).FindStringSubmatch(resp.Header.Get("Link")); m != nil {
			next = m[1]
		}
	}
	if len(all) != 5 {
		t.Fatalf("listed %d deliveries over all pages, want 5", len(all))
	}
	repoID := f.sim.RepoID(repoWeb)
	for i, d := range all {
		if i > 0 && d.ID >= all[i-1].ID {
			t.Errorf("delivery %d (id %d) listed after id %d: want newest first", i, d.ID, all[i-1].ID)
		}
		if d.Event != "push" || d.Action != nil || d.StatusCode != 502 || d.Status != "Invalid HTTP Response: 502" ||
			d.InstallationID == nil || *d.InstallationID != f.inst || d.RepositoryID == nil || *d.RepositoryID != repoID {
			t.Errorf("delivery %+v", d)
		}
	}

	if got, _ := f.listDeliveries(t, "?per_page=500"); len(got) != 5 {
		t.Errorf("per_page=500 listed %d", len(got))
	}
	if got, _ := f.listDeliveries(t, "?status=success"); len(got) != 0 {
		t.Errorf("status=success listed %d failed deliveries", len(got))
	}
	if got, _ := f.listDeliveries(t, "?status=failure"); len(got) != 5 {
		t.Errorf("status=failure listed %d of 5 answered 502", len(got))
	}
	if resp, b := f.do(t, http.MethodGet, "app/hook/deliveries?cursor=bogus", "Bearer "+f.jwt(t), nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad cursor answered %d %s, want 400", resp.StatusCode, b)
	}
	if resp, _ := f.do(t, http.MethodGet, "app/hook/deliveries", "Bearer ghs_notajwt", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the App JWT the log answered %d, want 401", resp.StatusCode)
	}

	f.clock.Advance(72*time.Hour + time.Minute)
	if got, _ := f.listDeliveries(t, ""); len(got) != 0 {
		t.Errorf("after three days %d deliveries are still listed", len(got))
	}
	if resp, _ := f.do(t, http.MethodGet, "app/hook/deliveries/"+strconv.FormatInt(all[0].ID, 10), "Bearer "+f.jwt(t), nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a delivery older than three days answered %d, want 404", resp.StatusCode)
	}
}

func TestHookDeliveries_RedeliveryIsANewAttemptWithTheSameGUIDAndBytes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.sim.SetWebhookURL("http://" + closedAddr(t))
	sha, err := f.sim.Commit(ctx, repoWeb, "main", map[string][]byte{"a": []byte("1")}, "missed")
	if err == nil {
		t.Fatal("a delivery to a closed port succeeded")
	}
	items, _ := f.listDeliveries(t, "")
	if len(items) != 1 || items[0].StatusCode != 0 || items[0].Status != "failed to connect to network" {
		t.Fatalf("logged %+v, want one attempt that got no answer", items)
	}
	failed := items[0]

	resp, b := f.do(t, http.MethodGet, "app/hook/deliveries/"+strconv.FormatInt(failed.ID, 10), "Bearer "+f.jwt(t), nil)
	var one struct {
		hookItem
		Request struct {
			Headers map[string]string `json:"headers"`
			Payload struct {
				After string `json:"after"`
			} `json:"payload"`
		} `json:"request"`
		Response struct {
			Headers map[string]string `json:"headers"`
			Payload *string           `json:"payload"`
		} `json:"response"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &one) != nil {
		t.Fatalf("get delivery: %d %s", resp.StatusCode, b)
	}
	if one.Request.Payload.After != sha || one.Request.Headers["X-Github-Delivery"] != failed.GUID || one.Response.Headers != nil || one.Response.Payload != nil {
		t.Fatalf("get delivery: %s", b)
	}

	rc := f.receive(t, http.StatusAccepted)
	resp, b = f.do(t, http.MethodPost, "app/hook/deliveries/"+strconv.FormatInt(failed.ID, 10)+"/attempts", "Bearer "+f.jwt(t), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("redeliver: %d %s, want 202", resp.StatusCode, b)
	}
	var again []hookItem
	waitUntil(t, func() bool { again, _ = f.listDeliveries(t, ""); return len(again) == 2 })
	re := again[0]
	if re.GUID != failed.GUID || !re.Redelivery || re.ID <= failed.ID || re.StatusCode != 202 || re.Status != "OK" {
		t.Fatalf("redelivery logged as %+v; the original was %+v", re, failed)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var body struct{ After string }
	if len(rc.got) != 1 || rc.got[0].Header.Get("X-GitHub-Delivery") != failed.GUID || json.Unmarshal(rc.bodies[0], &body) != nil || body.After != sha {
		t.Fatalf("the receiver got %d requests, the first with delivery %q", len(rc.got), rc.got[0].Header.Get("X-GitHub-Delivery"))
	}

	for _, path := range []string{"app/hook/deliveries/999/attempts", "app/hook/deliveries/x/attempts"} {
		if resp, _ := f.do(t, http.MethodPost, path, "Bearer "+f.jwt(t), nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s answered %d, want 404", path, resp.StatusCode)
		}
	}
}

// waitUntil polls ok for up to 20 s: the Sim makes a redelivery after answering 202.
func waitUntil(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
