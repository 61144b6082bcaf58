package protocol_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
)

// fuzzFrames are seeds for FuzzDecode: one good frame of every type, and frames that probe
// the edges of the decoder. Plain `go test` runs them as cases.
func fuzzFrames(tb testing.TB) [][]byte {
	tb.Helper()
	ts := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	result := protocol.JobResult{JobID: "job-7", Status: protocol.StatusFailure, Error: "web unhealthy",
		Services: []protocol.ServiceStatus{{Name: "web", State: "running", Health: "unhealthy", LogTail: []string{"panic"}}}, DurationMS: 9}
	good := []struct {
		typ     string
		payload any
	}{
		{protocol.TypeDeploy, sampleDeploy()},
		{protocol.TypeCancel, protocol.Cancel{JobID: "job-7"}},
		{protocol.TypeResultAck, protocol.ResultAck{JobID: "job-7"}},
		{protocol.TypeHello, protocol.Hello{AgentVersion: "1.0.0", Protocol: protocol.Version, UnackedResults: []protocol.JobResult{result}}},
		{protocol.TypeJobAccepted, protocol.JobAccepted{JobID: "job-7"}},
		{protocol.TypeJobPhase, protocol.JobPhase{JobID: "job-7", Phase: protocol.PhaseVerifying}},
		{protocol.TypeLogChunk, protocol.LogChunk{JobID: "job-7", Seq: 1, Stream: protocol.StreamStdout, Line: "héllo <b>&\x00", TS: ts}},
		{protocol.TypeJobResult, result},
		{protocol.TypeUpdate, protocol.Update{Version: "v1.2.0", Platform: "linux/amd64", SHA256: strings.Repeat("0", 64), Path: "/agent/download/linux/amd64"}},
		{protocol.TypeUpdateFailed, protocol.UpdateFailed{Version: "v1.2.0", Error: "checksum mismatch"}},
	}
	var frames [][]byte
	for _, g := range good {
		b, err := protocol.Encode(g.typ, g.payload)
		if err != nil {
			tb.Fatal(err)
		}
		frames = append(frames, b)
	}
	for _, s := range []string{
		``, `null`, `[]`, `{}`, `DEPLOY`,
		`{"type":"REBOOT","payload":{}}`,
		`{"type":"CANCEL","payload":null}`,
		`{"type":"CANCEL","payload":"x"}`,
		`{"type":"LOG_CHUNK","payload":{"seq":1e400}}`,
		`{"type":"LOG_CHUNK","payload":{"ts":"0000-01-01T00:00:00+01:00"}}`,
		`{"type":"LOG_CHUNK","payload":{"line":"\ud800\udc00\ud800","job_id":"\xff"}}`,
		`{"type":"DEPLOY","payload":{"config":{"timeout":1e300}}}`,
		`{"type":"DEPLOY","payload":{"config":{"timeout":-9223372036.854775808}}}`,
		`{"type":"DEPLOY","payload":{"config":{"timeout":"-2562047h47m16.854775808s","services":{"web":{"health_check_grace_period":0.5}}}}}`,
		`{"type":"DEPLOY","payload":{"previous":{"sha":"a","config":{"timeout":null}}},"payload":{}}`,
		`{"TYPE":"HELLO","Payload":{"Protocol":1,"unacked_results":[{"services":[{"log_tail":null}]}]}}`,
	} {
		frames = append(frames, []byte(s))
	}
	return frames
}

// FuzzDecode feeds Decode what a hostile peer could send. It must never panic, must refuse
// a frame over MaxFrameBytes, and whatever it accepts must encode again and decode to the
// same frame, so what one end reads is what the other end meant.
func FuzzDecode(f *testing.F) {
	for _, frame := range fuzzFrames(f) {
		f.Add(frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		typ, v, err := protocol.Decode(frame)
		if err != nil {
			if !errors.Is(err, protocol.ErrUnknownType) && !strings.Contains(err.Error(), protocol.CloseReasonBadFrame) {
				t.Fatalf("error %q carries no close reason", err)
			}
			return
		}
		if len(frame) > protocol.MaxFrameBytes {
			t.Fatalf("accepted a frame of %d bytes, over the %d byte limit", len(frame), protocol.MaxFrameBytes)
		}
		again, err := protocol.Encode(typ, v)
		if err != nil {
			t.Fatalf("Decode accepted %q as %+v, which does not encode: %v", frame, v, err)
		}
		typ2, v2, err := protocol.Decode(again)
		if err != nil || typ2 != typ {
			t.Fatalf("re-encoded frame %s decodes as %s, %v", again, typ2, err)
		}
		third, err := protocol.Encode(typ2, v2)
		if err != nil || !bytes.Equal(third, again) {
			t.Fatalf("round trip changed the frame:\n%s\n%s (%v)", again, third, err)
		}
		checkBounds(t, v)
	})
}

// checkBounds runs what the server does with a decoded frame: Validate refuses it with the
// close reason, or Clip leaves every text field within its bound.
func checkBounds(t *testing.T, v any) {
	t.Helper()
	if err := protocol.Validate(v); err != nil {
		if !strings.HasPrefix(err.Error(), protocol.CloseReasonBadFrame) {
			t.Fatalf("Validate error %q carries no close reason", err)
		}
		return
	}
	switch p := v.(type) {
	case *protocol.LogChunk:
		p.Clip()
		if len(p.Line) > protocol.MaxLogLineBytes {
			t.Fatalf("clipped line of %d bytes", len(p.Line))
		}
	case *protocol.JobResult:
		p.Clip()
		if len(p.Error) > protocol.MaxErrorBytes || len(p.Status) > protocol.MaxStatusBytes || len(p.Services) > protocol.MaxServices {
			t.Fatalf("clipped result still over its bounds: %+v", p)
		}
	case *protocol.Hello:
		p.Clip()
		if len(p.Hostname) > protocol.MaxHelloFieldBytes || len(p.UnackedResults) > protocol.MaxUnackedResults {
			t.Fatalf("clipped hello still over its bounds: %+v", p)
		}
	}
}

func TestDecode_RefusesAFrameOverTheLimit(t *testing.T) {
	t.Parallel()
	frame, err := protocol.Encode(protocol.TypeLogChunk, protocol.LogChunk{JobID: "j", Seq: 1, Line: strings.Repeat("x", protocol.MaxFrameBytes)})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = protocol.Decode(frame)
	if err == nil || !strings.Contains(err.Error(), protocol.CloseReasonBadFrame) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("Decode of a %d byte frame: err = %v, want a malformed-frame error naming the limit", len(frame), err)
	}
}
