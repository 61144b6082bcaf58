package protocol_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stagely/stagely/agent/protocol"
)

func TestValidate_RefusesIdentifiersOutOfBounds(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("7", protocol.MaxJobIDBytes+1)
	cases := []struct {
		name  string
		frame any
		ok    bool
	}{
		{"deployment id", &protocol.JobAccepted{JobID: "42"}, true},
		{"id of the longest length", &protocol.JobAccepted{JobID: long[1:]}, true},
		{"id of every allowed kind of byte", &protocol.Cancel{JobID: "job-7.a_B"}, true},
		{"id one byte too long", &protocol.JobAccepted{JobID: long}, false},
		{"missing id", &protocol.JobResult{Status: protocol.StatusSuccess}, false},
		{"id that is a path", &protocol.LogChunk{JobID: "../7", Seq: 1, Stream: protocol.StreamStdout}, false},
		{"id with a NUL", &protocol.ResultAck{JobID: "7\x00"}, false},
		{"id with a space", &protocol.Deploy{JobID: "7 8"}, false},
		{"phase", &protocol.JobPhase{JobID: "7", Phase: protocol.PhasePreDeploy}, true},
		{"phase with markup", &protocol.JobPhase{JobID: "7", Phase: "<b>"}, false},
		{"empty phase", &protocol.JobPhase{JobID: "7"}, false},
		{"phase too long", &protocol.JobPhase{JobID: "7", Phase: strings.Repeat("a", protocol.MaxPhaseBytes+1)}, false},
		{"line", &protocol.LogChunk{JobID: "7", Seq: 1, Stream: protocol.StreamSystem}, true},
		{"seq 0", &protocol.LogChunk{JobID: "7", Seq: 0, Stream: protocol.StreamStdout}, false},
		{"unknown stream", &protocol.LogChunk{JobID: "7", Seq: 1, Stream: "stdin"}, false},
		{"hello has no identifiers", &protocol.Hello{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := protocol.Validate(tc.frame)
			if (err == nil) != tc.ok {
				t.Fatalf("Validate(%+v) = %v, want ok %v", tc.frame, err, tc.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), protocol.CloseReasonBadFrame) {
				t.Fatalf("error %q does not carry the close reason", err)
			}
		})
	}
}

func TestTruncate_CutsOnARuneBoundaryAndMarksTheCut(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"short enough", "hello", 5, "hello"},
		{"ascii", strings.Repeat("a", 40), 20, strings.Repeat("a", 20-len(protocol.TruncatedMark)) + protocol.TruncatedMark},
		// "é" is two bytes: cutting at an odd length would split one.
		{"multibyte", strings.Repeat("é", 20), 20, strings.Repeat("é", (20-len(protocol.TruncatedMark))/2) + protocol.TruncatedMark},
		{"bound below the mark", "éééé", 3, "é"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := protocol.Truncate(tc.in, tc.max)
			if got != tc.want || len(got) > tc.max || !utf8.ValidString(got) {
				t.Fatalf("Truncate(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}

func TestClip_BoundsEveryTextField(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 1<<20)
	res := protocol.JobResult{JobID: "7", Status: huge, Error: huge}
	for range protocol.MaxServices + 5 {
		res.Services = append(res.Services, protocol.ServiceStatus{Name: huge, State: huge, Health: huge, ContainerID: huge})
	}
	for i := range protocol.MaxLogTailLines + 5 {
		res.Services[0].LogTail = append(res.Services[0].LogTail, huge[:i+protocol.MaxLogTailLineBytes])
	}
	hello := protocol.Hello{AgentVersion: huge, Hostname: huge, Docker: huge, Compose: huge}
	for range protocol.MaxUnackedResults + 5 {
		hello.UnackedResults = append(hello.UnackedResults, protocol.JobResult{JobID: "7", Error: huge})
	}
	line := protocol.LogChunk{JobID: "7", Line: huge}
	if !res.Clip() || !hello.Clip() || !line.Clip() {
		t.Fatal("Clip reported nothing cut")
	}
	if len(res.Status) > protocol.MaxStatusBytes || len(res.Error) > protocol.MaxErrorBytes || len(res.Services) != protocol.MaxServices {
		t.Fatalf("result: status %d, error %d bytes, %d services", len(res.Status), len(res.Error), len(res.Services))
	}
	for _, s := range res.Services {
		if max(len(s.Name), len(s.State), len(s.Health), len(s.ContainerID)) > protocol.MaxServiceFieldBytes {
			t.Fatalf("service field over %d bytes", protocol.MaxServiceFieldBytes)
		}
	}
	tail := res.Services[0].LogTail
	if len(tail) != protocol.MaxLogTailLines || len(tail[len(tail)-1]) > protocol.MaxLogTailLineBytes {
		t.Fatalf("log tail of %d lines, the last of %d bytes", len(tail), len(tail[len(tail)-1]))
	}
	if len(hello.UnackedResults) != protocol.MaxUnackedResults || len(hello.UnackedResults[0].Error) > protocol.MaxErrorBytes ||
		max(len(hello.AgentVersion), len(hello.Hostname), len(hello.Docker), len(hello.Compose)) > protocol.MaxHelloFieldBytes {
		t.Fatalf("hello not bounded: %d results", len(hello.UnackedResults))
	}
	if len(line.Line) > protocol.MaxLogLineBytes {
		t.Fatalf("line of %d bytes", len(line.Line))
	}
	small := protocol.LogChunk{JobID: "7", Line: "ok"}
	if small.Clip() || small.Line != "ok" {
		t.Fatalf("Clip changed a line within bounds: %q", small.Line)
	}
}

func TestValidate_HoldsUpdateOffersToTheirBounds(t *testing.T) {
	t.Parallel()
	good := protocol.Update{Version: "v1.2.0-3-gabc", Platform: "linux/arm64", SHA256: strings.Repeat("0f", 32), Path: "/agent/download/linux/arm64"}
	cases := []struct {
		name   string
		change func(*protocol.Update)
		ok     bool
	}{
		{"a real offer", func(*protocol.Update) {}, true},
		{"no version", func(u *protocol.Update) { u.Version = "" }, false},
		{"version too long", func(u *protocol.Update) { u.Version = strings.Repeat("v", protocol.MaxHelloFieldBytes+1) }, false},
		{"version with a newline", func(u *protocol.Update) { u.Version = "v1\nv2" }, false},
		{"uppercase checksum", func(u *protocol.Update) { u.SHA256 = strings.ToUpper(u.SHA256) }, false},
		{"short checksum", func(u *protocol.Update) { u.SHA256 = u.SHA256[:63] }, false},
		{"absolute URL instead of a path", func(u *protocol.Update) { u.Path = "https://evil.example/agent" }, false},
		{"scheme-relative path to another host", func(u *protocol.Update) { u.Path = "//evil.example/agent" }, false},
		{"path too long", func(u *protocol.Update) { u.Path = "/" + strings.Repeat("a", protocol.MaxUpdatePathBytes) }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := good
			tc.change(&u)
			if err := protocol.Validate(&u); (err == nil) != tc.ok {
				t.Fatalf("Validate(%+v) = %v, want ok=%v", u, err, tc.ok)
			}
		})
	}
}

func TestClip_BoundsHelloFeaturesAndUpdateFailures(t *testing.T) {
	t.Parallel()
	h := protocol.Hello{Platform: strings.Repeat("p", protocol.MaxHelloFieldBytes+5)}
	for range protocol.MaxHelloFeatures + 3 {
		h.Features = append(h.Features, strings.Repeat("f", protocol.MaxHelloFieldBytes+1))
	}
	if !h.Clip() {
		t.Fatal("Clip reported nothing cut")
	}
	if len(h.Features) != protocol.MaxHelloFeatures || len(h.Platform) > protocol.MaxHelloFieldBytes {
		t.Fatalf("features %d, platform %d bytes", len(h.Features), len(h.Platform))
	}
	for _, f := range h.Features {
		if len(f) > protocol.MaxHelloFieldBytes {
			t.Fatalf("feature of %d bytes", len(f))
		}
	}
	u := protocol.UpdateFailed{Version: "v2", Error: strings.Repeat("e", protocol.MaxErrorBytes*2)}
	if !u.Clip() || len(u.Error) > protocol.MaxErrorBytes {
		t.Fatalf("error of %d bytes after Clip", len(u.Error))
	}
}
