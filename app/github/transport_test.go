package github_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/app/github"
)

const secondaryLimitBody = `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits","status":"403"}`

func TestRetry_FailuresThatPassAreRetried(t *testing.T) {
	t.Parallel()
	fixed := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		times      int
		status     int
		header     http.Header
		body       string
		wantSleeps []time.Duration // exact waits; nil means "backoff": checked by range
	}{
		{name: "503 twice", times: 2, status: http.StatusServiceUnavailable, body: `{"message":"Service Unavailable"}`},
		{name: "502 once", times: 1, status: http.StatusBadGateway, body: `{"message":"Server Error"}`},
		{name: "429 with Retry-After: 1", times: 1, status: http.StatusTooManyRequests, header: http.Header{"Retry-After": {"1"}},
			body: `{"message":"Too Many Requests"}`, wantSleeps: []time.Duration{time.Second}},
		{name: "403 secondary rate limit without headers waits a minute", times: 1, status: http.StatusForbidden,
			body: secondaryLimitBody, wantSleeps: []time.Duration{time.Minute}},
		{name: "403 secondary rate limit with Retry-After", times: 1, status: http.StatusForbidden, header: http.Header{"Retry-After": {"7"}},
			body: secondaryLimitBody, wantSleeps: []time.Duration{7 * time.Second}},
		{name: "403 primary limit spent waits for the reset", times: 1, status: http.StatusForbidden,
			header: http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(fixed.Add(20*time.Second).Unix(), 10)}},
			body:   `{"message":"API rate limit exceeded for installation ID 1."}`, wantSleeps: []time.Duration{21 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixtureWith(t, func(o *github.Options) { o.Now = func() time.Time { return fixed } })
			ctx := context.Background()
			// Mint the installation token first, so the faults below hit the status call itself.
			if _, err := f.installation().ReadFile(ctx, repoWeb, "stagely.yaml", f.sha1); err != nil {
				t.Fatal(err)
			}
			f.faults.fail(http.MethodPost, "/repos/acme/web/statuses/*", tt.times, tt.status, tt.header, tt.body)
			err := f.installation().CreateStatus(ctx, repoWeb, f.sha1, github.CommitStatus{State: "pending", Description: "Deploying"})
			if err != nil {
				t.Fatalf("CreateStatus after %d x %d: %v", tt.times, tt.status, err)
			}
			if got := f.sim.Statuses(repoWeb, f.sha1); len(got) != 1 {
				t.Fatalf("%d statuses stored, want exactly 1", len(got))
			}
			seen := f.faults.requests(http.MethodPost, "/repos/acme/web/statuses/*")
			if len(seen) != tt.times+1 {
				t.Fatalf("%d attempts, want %d", len(seen), tt.times+1)
			}
			for i, s := range seen {
				if len(s.Body) == 0 || !bytes.Equal(s.Body, seen[0].Body) {
					t.Fatalf("attempt %d sent body %q, want the first attempt's %q", i+1, s.Body, seen[0].Body)
				}
			}
			sleeps := f.sleeps.waited.All()
			if len(sleeps) != tt.times {
				t.Fatalf("slept %v, want %d waits", sleeps, tt.times)
			}
			for i, d := range sleeps {
				if tt.wantSleeps != nil {
					if d != tt.wantSleeps[i] {
						t.Fatalf("wait %d = %v, want %v", i+1, d, tt.wantSleeps[i])
					}
					continue
				}
				// Backoff with jitter: between half and all of 1s, 2s, 4s…
				full := time.Second << i
				if d < full/2 || d > full {
					t.Fatalf("backoff wait %d = %v, want within [%v, %v]", i+1, d, full/2, full)
				}
			}
		})
	}
}

func TestRetry_OtherFailuresAreNotRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		header  http.Header
		body    string
		wantErr string
		isLimit bool
	}{
		{name: "403 without a rate limit", status: http.StatusForbidden,
			body: `{"message":"Resource not accessible by integration","status":"403"}`, wantErr: "Resource not accessible by integration"},
		{name: "404", status: http.StatusNotFound, body: `{"message":"Not Found"}`, wantErr: "404 Not Found"},
		{name: "Retry-After beyond the longest wait", status: http.StatusTooManyRequests, header: http.Header{"Retry-After": {"3600"}},
			body: `{"message":"Too Many Requests"}`, wantErr: "429", isLimit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			ctx := context.Background()
			if _, err := f.installation().ReadFile(ctx, repoWeb, "stagely.yaml", f.sha1); err != nil {
				t.Fatal(err)
			}
			f.faults.fail(http.MethodPost, "/repos/acme/web/statuses/*", 5, tt.status, tt.header, tt.body)
			err := f.installation().CreateStatus(ctx, repoWeb, f.sha1, github.CommitStatus{State: "pending"})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CreateStatus error = %v, want it to carry %q", err, tt.wantErr)
			}
			if errors.Is(err, github.ErrRateLimited) != tt.isLimit {
				t.Fatalf("errors.Is(err, ErrRateLimited) = %v, want %v", !tt.isLimit, tt.isLimit)
			}
			f.wantRequests(t, http.MethodPost, "/repos/acme/web/statuses/*", 1)
			if s := f.sleeps.waited.All(); len(s) != 0 {
				t.Fatalf("slept %v", s)
			}
		})
	}
}

func TestRetry_422IsNotRetriedAndCarriesGitHubsMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	missing := strings.Repeat("f", 40)
	_, err := f.installation().CreateCheckRun(context.Background(), repoWeb, github.NewCheckRun{Name: "Stagely / deploy", HeadSHA: missing})
	var apiErr *github.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "No commit found for SHA: "+missing) {
		t.Fatalf("CreateCheckRun(unknown sha) error = %v, want GitHub's 422 message", err)
	}
	f.wantRequests(t, http.MethodPost, "/repos/acme/web/check-runs", 1)
}

func TestRetry_GivesUpAfterMaxRetries(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, func(o *github.Options) { o.MaxRetries = 2 })
	ctx := context.Background()
	if _, err := f.installation().ReadFile(ctx, repoWeb, "stagely.yaml", f.sha1); err != nil {
		t.Fatal(err)
	}
	f.faults.fail(http.MethodGet, "/repos/acme/web/contents/*", 100, http.StatusServiceUnavailable, nil, `{"message":"Service Unavailable"}`)
	_, err := f.installation().ReadFile(ctx, repoWeb, "compose.yaml", f.sha1)
	var apiErr *github.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("ReadFile error = %v, want the last 503", err)
	}
	f.wantRequests(t, http.MethodGet, "/repos/acme/web/contents/compose.yaml", 3)
}

func TestRetry_StopsWhenTheDeadlineComesFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.installation().ReadFile(ctx, repoWeb, "stagely.yaml", f.sha1); err != nil {
		t.Fatal(err)
	}
	f.faults.fail(http.MethodGet, "/repos/acme/web/contents/*", 5, http.StatusTooManyRequests, http.Header{"Retry-After": {"30"}}, `{"message":"Too Many Requests"}`)
	// Shorter than the Retry-After, yet long enough for the request itself on a loaded machine.
	short, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err := f.installation().ReadFile(short, repoWeb, "compose.yaml", f.sha1)
	if !errors.Is(err, github.ErrRateLimited) {
		t.Fatalf("ReadFile error = %v, want ErrRateLimited without waiting past the deadline", err)
	}
	if s := f.sleeps.waited.All(); len(s) != 0 {
		t.Fatalf("slept %v past a 20s deadline", s)
	}
}

func TestRetry_InstallationTokenMintIsRetriedToo(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.faults.fail(http.MethodPost, "/app/installations/*/access_tokens", 1, http.StatusBadGateway, nil, `{"message":"Server Error"}`)
	if _, err := f.installation().ReadFile(context.Background(), repoWeb, "stagely.yaml", f.sha1); err != nil {
		t.Fatalf("ReadFile after one failed mint: %v", err)
	}
	f.wantRequests(t, http.MethodPost, "/app/installations/*/access_tokens", 2)
}

func TestRetry_RefusedMintIsAnAPIError(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.faults.fail(http.MethodPost, "/app/installations/*/access_tokens", 1, http.StatusForbidden, nil, `{"message":"This installation has been suspended"}`)
	_, err := f.installation().ReadFile(context.Background(), repoWeb, "stagely.yaml", f.sha1)
	var apiErr *github.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden || !strings.Contains(err.Error(), "suspended") {
		t.Fatalf("ReadFile error = %v, want GitHub's 403 message", err)
	}
}

func TestLogs_NeverCarryCredentials(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	in := f.installation()
	f.faults.fail(http.MethodPost, "/repos/acme/web/statuses/*", 1, http.StatusServiceUnavailable, nil, `{"message":"Service Unavailable"}`)
	f.faults.fail(http.MethodGet, "/repos/acme/web/contents/*", 1, http.StatusServiceUnavailable, nil, `{"message":"Service Unavailable"}`)
	if _, err := in.ReadFile(ctx, repoWeb, "stagely.yaml", f.sha1); err != nil {
		t.Fatal(err)
	}
	if err := in.CreateStatus(ctx, repoWeb, f.sha1, github.CommitStatus{State: "pending"}); err != nil {
		t.Fatal(err)
	}
	tok, err := in.RepoReadToken(ctx, f.sim.RepoID(repoWeb))
	if err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "github call will be retried") || !strings.Contains(logs, "checking before sending it again") || !strings.Contains(logs, "/access_tokens") {
		t.Fatalf("logs do not show the calls and the retry:\n%s", logs)
	}
	for _, secret := range []string{tok.Value, "ghs_", "Bearer", "Authorization", "eyJ", "token "} {
		if strings.Contains(logs, secret) {
			t.Fatalf("logs contain %q:\n%s", secret, logs)
		}
	}
}

func TestRetry_NetworkErrorsAreRetriedBlindOnlyForReads(t *testing.T) {
	t.Parallel()
	// Without keep-alives every request has a fresh connection, so http.Transport does not resend
	// on its own (it does for a reused one) and the retry seen is ours.
	f := newFixtureWith(t, func(o *github.Options) {
		o.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	})
	ctx := context.Background()
	if _, err := f.installation().ReadFile(ctx, repoWeb, "stagely.yaml", f.sha1); err != nil {
		t.Fatal(err)
	}
	f.faults.fail(http.MethodGet, "/repos/acme/web/contents/compose.yaml", 1, 0, nil, "")
	if _, err := f.installation().ReadFile(ctx, repoWeb, "compose.yaml", f.sha1); err != nil {
		t.Fatalf("ReadFile after a dropped connection: %v", err)
	}
	f.wantRequests(t, http.MethodGet, "/repos/acme/web/contents/compose.yaml", 2)
	if s := f.sleeps.waited.All(); len(s) != 1 {
		t.Fatalf("waits %v: want one backoff from our retry, not the http.Transport's own resend", s)
	}
	// A POST that died on the wire may have been applied: it is sent again only once GitHub's
	// list of statuses shows it is not there.
	f.faults.fail(http.MethodPost, "/repos/acme/web/statuses/*", 1, 0, nil, "")
	if err := f.installation().CreateStatus(ctx, repoWeb, f.sha1, github.CommitStatus{State: "pending"}); err != nil {
		t.Fatalf("CreateStatus after a dropped connection: %v", err)
	}
	f.wantRequests(t, http.MethodPost, "/repos/acme/web/statuses/*", 2)
	// Before sending again, the client looks at what the first attempt may have written.
	f.wantRequests(t, http.MethodGet, "/repos/acme/web/commits/*/statuses", 1)
	if got := f.sim.Statuses(repoWeb, f.sha1); len(got) != 1 {
		t.Fatalf("%d statuses stored, want 1", len(got))
	}
}
