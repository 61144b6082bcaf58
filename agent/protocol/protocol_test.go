package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
)

func sampleDeploy() protocol.Deploy {
	return protocol.Deploy{
		JobID:   "job-7",
		Project: protocol.Project{ID: "p1", Name: "Shop", ComposeProject: "shop"},
		Repo:    "acme/shop",
		Ref:     "refs/heads/main",
		SHA:     "0123456789abcdef0123456789abcdef01234567",
		Source:  protocol.Source{TarballURL: "https://api.example/tarball", Token: "ghs_TOPSECRETtoken"},
		Config: protocol.JobConfig{
			ComposeFile: "deploy/compose.yml",
			Strategy:    protocol.StrategyStopFirst,
			Timeout:     protocol.Duration(300 * time.Second),
			Hooks: protocol.Hooks{
				PreDeploy:  []protocol.Hook{{Service: "backend", Command: "./migrate_db.sh"}},
				PostDeploy: []protocol.Hook{{Service: "backend", Command: "curl -X POST x", ContinueOnError: true}},
			},
			Services: map[string]protocol.ServiceConfig{"backend": {HealthCheckGracePeriod: protocol.Duration(time.Minute), Ignore: true}},
		},
		Secrets:  []protocol.Secret{{Key: "DB_PASSWORD", Value: "hunter2-SECRETvalue", Scope: protocol.ScopeGlobal}},
		Previous: &protocol.Previous{SHA: "fedcba", Config: protocol.JobConfig{Strategy: protocol.StrategyRecreate}},
	}
}

func TestEncodeDecode_RoundTripsEveryType(t *testing.T) {
	t.Parallel()
	ts := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	result := protocol.JobResult{
		JobID: "job-7", Status: protocol.StatusRolledBack, Error: "web unhealthy",
		Services:   []protocol.ServiceStatus{{Name: "web", State: "running", Health: "unhealthy", ContainerID: "c1", LogTail: []string{"panic"}}},
		DurationMS: 9001,
	}
	deployNoPrev := sampleDeploy()
	deployNoPrev.Previous = nil
	tests := []struct {
		typ     string
		payload any
	}{
		{protocol.TypeDeploy, ptr(sampleDeploy())},
		{protocol.TypeDeploy, &deployNoPrev},
		{protocol.TypeCancel, &protocol.Cancel{JobID: "job-7"}},
		{protocol.TypeResultAck, &protocol.ResultAck{JobID: "job-7"}},
		{protocol.TypeHello, &protocol.Hello{AgentVersion: "1.0.0", Protocol: protocol.Version, Hostname: "h", Docker: "27", Compose: "2.40", UnackedResults: []protocol.JobResult{result}}},
		{protocol.TypeJobAccepted, &protocol.JobAccepted{JobID: "job-7"}},
		{protocol.TypeJobPhase, &protocol.JobPhase{JobID: "job-7", Phase: protocol.PhaseVerifying}},
		{protocol.TypeLogChunk, &protocol.LogChunk{JobID: "job-7", Seq: 12, Stream: protocol.StreamStderr, Line: "héllo \"quoted\" \t", TS: ts}},
		{protocol.TypeJobResult, &result},
		{protocol.TypeUpdate, &protocol.Update{Version: "v1.2.0", Platform: "linux/amd64", SHA256: strings.Repeat("ab", 32), Path: "/agent/download/linux/amd64"}},
		{protocol.TypeUpdateFailed, &protocol.UpdateFailed{Version: "v1.2.0", Error: "checksum mismatch"}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			t.Parallel()
			b, err := protocol.Encode(tt.typ, tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > protocol.MaxFrameBytes {
				t.Fatalf("frame of %d bytes exceeds the limit", len(b))
			}
			typ, v, err := protocol.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if typ != tt.typ {
				t.Fatalf("type = %s, want %s", typ, tt.typ)
			}
			if !reflect.DeepEqual(v, tt.payload) {
				t.Fatalf("round trip changed the payload:\n got %+v\nwant %+v", v, tt.payload)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestDecode_RefusesUnknownAndMalformedFrames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		frame       string
		unknownType bool
		reason      string
	}{
		{"unknown type", `{"type":"REBOOT","payload":{}}`, true, protocol.CloseReasonUnknownType},
		{"lower-case type", `{"type":"deploy","payload":{"job_id":"x"}}`, true, protocol.CloseReasonUnknownType},
		{"empty type", `{"payload":{}}`, true, protocol.CloseReasonUnknownType},
		{"not json", `DEPLOY`, false, protocol.CloseReasonBadFrame},
		{"missing payload", `{"type":"CANCEL"}`, false, protocol.CloseReasonBadFrame},
		{"null payload", `{"type":"CANCEL","payload":null}`, false, protocol.CloseReasonBadFrame},
		{"payload of the wrong shape", `{"type":"LOG_CHUNK","payload":{"seq":"one"}}`, false, protocol.CloseReasonBadFrame},
		{"bad duration", `{"type":"DEPLOY","payload":{"job_id":"x","config":{"timeout":"soon"}}}`, false, protocol.CloseReasonBadFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, v, err := protocol.Decode([]byte(tt.frame))
			if err == nil {
				t.Fatalf("Decode accepted %s as %+v", tt.frame, v)
			}
			if got := errors.Is(err, protocol.ErrUnknownType); got != tt.unknownType {
				t.Fatalf("errors.Is(err, ErrUnknownType) = %v, want %v (err %v)", got, tt.unknownType, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error %q does not carry the close reason %q", err, tt.reason)
			}
		})
	}
}

func TestDuration_AcceptsStringsAndSeconds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{`"300s"`, 300 * time.Second, false},
		{`"1m30s"`, 90 * time.Second, false},
		{`45`, 45 * time.Second, false},
		{`1.5`, 1500 * time.Millisecond, false},
		{`null`, 0, false},
		{`"five minutes"`, 0, true},
		{`true`, 0, true},
		// Seconds past what a time.Duration holds used to wrap to a negative timeout.
		{`1e300`, 0, true},
		{`-1e300`, 0, true},
		{`9223372036.854775808`, 0, true},
		{`-9223372036.854775808`, time.Duration(math.MinInt64), false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			var d protocol.Duration
			err := json.Unmarshal([]byte(tt.in), &d)
			if (err != nil) != tt.bad {
				t.Fatalf("Unmarshal(%s) error = %v, want error %v", tt.in, err, tt.bad)
			}
			if !tt.bad && d.Std() != tt.want {
				t.Fatalf("Unmarshal(%s) = %v, want %v", tt.in, d.Std(), tt.want)
			}
		})
	}
	b, err := json.Marshal(protocol.Duration(300 * time.Second))
	if err != nil || string(b) != `"5m0s"` {
		t.Fatalf("Marshal = %s, %v; want \"5m0s\"", b, err)
	}
}

// TestSecrets_NeverPrintedThroughFmtOrSlog checks every way a value is commonly dumped.
func TestSecrets_NeverPrintedThroughFmtOrSlog(t *testing.T) {
	t.Parallel()
	d := sampleDeploy()
	secrets := []string{"hunter2-SECRETvalue", "ghs_TOPSECRETtoken"}
	values := map[string]any{
		"Secret":  d.Secrets[0],
		"*Secret": &d.Secrets[0],
		"Source":  d.Source,
		"*Source": &d.Source,
	}
	fmtOnly := map[string]any{
		// Deploy has no LogValue, so only fmt (and slog's text handler, which uses fmt)
		// reaches its fields' String methods; never hand a whole Deploy to a JSON logger.
		"Deploy":  d,
		"*Deploy": &d,
	}
	fmtChecks := func(name string, v any, verbs ...string) {
		for _, verb := range verbs {
			t.Run(name+" "+verb, func(t *testing.T) {
				t.Parallel()
				out := fmt.Sprintf(verb, v)
				for _, s := range secrets {
					if strings.Contains(out, s) {
						t.Fatalf("fmt %s of %s prints the secret %q", verb, name, s)
					}
				}
			})
		}
	}
	for name, v := range fmtOnly {
		fmtChecks(name, v, "%v", "%+v", "%#v")
	}
	for name, v := range values {
		fmtChecks(name, v, "%v", "%+v", "%#v", "%s")
		for hname, newHandler := range map[string]func(*bytes.Buffer) slog.Handler{
			"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
			"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		} {
			t.Run(name+" slog "+hname, func(t *testing.T) {
				t.Parallel()
				var buf bytes.Buffer
				slog.New(newHandler(&buf)).Info("deploy", "value", v)
				for _, s := range secrets {
					if strings.Contains(buf.String(), s) {
						t.Fatalf("slog %s of %s prints the secret %q", hname, name, s)
					}
				}
				if !strings.Contains(buf.String(), "[redacted]") {
					t.Fatalf("slog %s of %s shows no redaction marker: %s", hname, name, buf.String())
				}
			})
		}
	}
}

func TestSecrets_StillOnTheWire(t *testing.T) {
	t.Parallel()
	b, err := protocol.Encode(protocol.TypeDeploy, sampleDeploy())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"hunter2-SECRETvalue", "ghs_TOPSECRETtoken"} {
		if !bytes.Contains(b, []byte(s)) {
			t.Fatalf("encoded DEPLOY lacks %q: redaction must not reach the wire", s)
		}
	}
}

func TestPlanString_NamesRecreateUnchangedAndNewAndSaysWhenNothingChanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		plan protocol.Plan
		want string
	}{
		{protocol.Plan{Recreate: []string{"api"}, Unchanged: []string{"web", "worker"}}, "recreate: api · unchanged: web, worker · new: —"},
		{protocol.Plan{Create: []string{"api", "db"}}, "recreate: — · unchanged: — · new: api, db"},
		{protocol.Plan{Unchanged: []string{"web"}, Ignored: []string{"db"}}, "nothing to change · unchanged: web · ignored: db"},
		{protocol.Plan{Unchanged: []string{"web"}, Remove: []string{"old"}, Start: []string{"cache"}}, "recreate: — · unchanged: web · new: — · start: cache · remove: old"},
		{protocol.Plan{Recreate: []string{"db"}, Restart: []string{"api"}, Unchanged: []string{"web"}}, "recreate: db · unchanged: web · new: — · restart: api"},
	} {
		if got := tc.plan.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestJobPhaseClip_BoundsThePlansNames(t *testing.T) {
	t.Parallel()
	many := make([]string, protocol.MaxServices+5)
	for i := range many {
		many[i] = strings.Repeat("s", protocol.MaxServiceFieldBytes+1)
	}
	p := &protocol.JobPhase{JobID: "1", Phase: protocol.PhasePlanned, Plan: &protocol.Plan{Recreate: many[:3], Unchanged: many[3:]}}
	if !p.Clip() {
		t.Fatal("Clip() = false, want the plan cut")
	}
	n := 0
	for _, l := range p.Plan.Lists() {
		n += len(*l.Names)
		for _, s := range *l.Names {
			if len(s) > protocol.MaxServiceFieldBytes {
				t.Fatalf("name of %d bytes kept", len(s))
			}
		}
	}
	if n != protocol.MaxServices {
		t.Errorf("%d names kept, want %d", n, protocol.MaxServices)
	}
	if (&protocol.JobPhase{JobID: "1", Phase: protocol.PhaseBuilding}).Clip() {
		t.Error("Clip() cut a phase without a plan")
	}
}
