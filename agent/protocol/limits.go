package protocol

import (
	"fmt"
	"unicode/utf8"
)

// Bounds of every field an agent sends. They are part of the contract: the server enforces
// them on what it receives, so a token holder cannot pin the server's memory or fill its
// database. Identifiers that break them make the frame malformed (Validate); text is
// truncated with TruncatedMark (Clip), so a result is never refused for its size and
// repeated for ever. The agent already cuts its log lines to MaxLogLineBytes; real jobs
// stay far within the other bounds.
const (
	// MaxJobIDBytes bounds a job id, made of JobIDChars; the server's are deployment ids.
	MaxJobIDBytes = 64
	// MaxPhaseBytes bounds a JOB_PHASE phase: lowercase letters, digits and '_'.
	MaxPhaseBytes = 32
	// MaxLogLineBytes bounds one LOG_CHUNK line, TruncatedMark included.
	MaxLogLineBytes = 16 << 10
	// MaxJobLogLines is how many lines one job may log: the server stores the line numbered
	// MaxJobLogLines+1 as LogTruncatedLine, and drops (and counts) the lines past it.
	MaxJobLogLines = 100_000
	// MaxHelloFieldBytes bounds HELLO's agent_version, hostname, docker, compose, platform and
	// each feature.
	MaxHelloFieldBytes = 256
	// MaxHelloFeatures is how many features HELLO lists; later ones are dropped. Each is
	// a HELLO field, bounded by MaxHelloFieldBytes.
	MaxHelloFeatures = 16
	// MaxUpdatePathBytes bounds UPDATE's download path.
	MaxUpdatePathBytes = 256
	// MaxUnackedResults is how many results one HELLO carries; the agent sends the others
	// as JOB_RESULT frames after it.
	MaxUnackedResults = 32
	// MaxStatusBytes bounds a result's status.
	MaxStatusBytes = 32
	// MaxErrorBytes bounds a result's error text.
	MaxErrorBytes = 8 << 10
	// MaxServices is how many services one result lists, and how many names one plan
	// holds; later ones are dropped.
	MaxServices = 100
	// MaxServiceFieldBytes bounds a service's name, state, health, container id and change,
	// and each name of a JOB_PHASE's plan.
	MaxServiceFieldBytes = 256
	// MaxLogTailLines is how many lines a service's log tail keeps (the last ones).
	MaxLogTailLines = 100
	// MaxLogTailLineBytes bounds one line of a log tail.
	MaxLogTailLineBytes = 2 << 10
	// MaxFramesPerSecond and MaxFrameBurst pace what the server reads from one agent: a
	// token bucket. Past it the server reads more slowly (it does not drop or close), so
	// an agent needs no pacing of its own: TCP flow control holds its writes back.
	MaxFramesPerSecond = 1000
	// MaxFrameBurst covers an agent's queue of lines sent in one go after a reconnect.
	MaxFrameBurst = 10_000
)

// JobIDChars are the bytes a job id may hold.
const JobIDChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

// TruncatedMark ends a text that was cut to its bound.
const TruncatedMark = " …[truncated]"

// LogTruncatedLine is the system line numbered MaxJobLogLines+1 of a job that logged more.
const LogTruncatedLine = "stagely: log truncated at 100000 lines; later lines were dropped"

// ValidJobID reports why id is not a job id, or nil.
func ValidJobID(id string) error {
	if id == "" {
		return fmt.Errorf("%s: job_id missing", CloseReasonBadFrame)
	}
	if len(id) > MaxJobIDBytes {
		return fmt.Errorf("%s: job_id of %d bytes, over %d", CloseReasonBadFrame, len(id), MaxJobIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if !isJobIDChar(id[i]) {
			return fmt.Errorf("%s: job_id holds %q; allowed: letters, digits, '.', '_', '-'", CloseReasonBadFrame, id[i])
		}
	}
	return nil
}

func isJobIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

func validPhase(p string) error {
	if p == "" || len(p) > MaxPhaseBytes {
		return fmt.Errorf("%s: phase of %d bytes, want 1 to %d", CloseReasonBadFrame, len(p), MaxPhaseBytes)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("%s: phase holds %q; allowed: a-z, 0-9, '_'", CloseReasonBadFrame, c)
		}
	}
	return nil
}

// Validate checks the identifiers of a decoded frame (the payload Decode returned): job
// ids, phases, streams and sequence numbers, which an agent never gets wrong. An error
// carries CloseReasonBadFrame. Text fields are not checked here: Clip bounds them.
func Validate(v any) error {
	switch p := v.(type) {
	case *JobAccepted:
		return ValidJobID(p.JobID)
	case *JobPhase:
		if err := ValidJobID(p.JobID); err != nil {
			return err
		}
		return validPhase(p.Phase)
	case *LogChunk:
		if err := ValidJobID(p.JobID); err != nil {
			return err
		}
		if p.Seq < 1 {
			return fmt.Errorf("%s: seq %d, want 1 or more", CloseReasonBadFrame, p.Seq)
		}
		switch p.Stream {
		case StreamStdout, StreamStderr, StreamSystem:
			return nil
		}
		return fmt.Errorf("%s: stream %.32q, want stdout, stderr or system", CloseReasonBadFrame, p.Stream)
	case *JobResult:
		return ValidJobID(p.JobID)
	case *Deploy:
		return ValidJobID(p.JobID)
	case *Cancel:
		return ValidJobID(p.JobID)
	case *ResultAck:
		return ValidJobID(p.JobID)
	case *Update:
		return validUpdate(p)
	}
	return nil
}

// Truncate cuts s to at most max bytes, TruncatedMark included, on a rune boundary.
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len(TruncatedMark)
	if cut <= 0 {
		return cutRunes(s, max)
	}
	return cutRunes(s, cut) + TruncatedMark
}

// cutRunes is s's longest prefix of at most n bytes that ends on a rune boundary.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Clip bounds the line; it reports whether it had to.
func (l *LogChunk) Clip() bool {
	before := len(l.Line)
	l.Line = Truncate(l.Line, MaxLogLineBytes)
	return len(l.Line) != before
}

// Clip bounds every text field of the result and of its services; it reports whether
// anything was cut.
func (r *JobResult) Clip() bool {
	cut := false
	clip := func(s *string, max int) {
		if len(*s) > max {
			*s, cut = Truncate(*s, max), true
		}
	}
	clip(&r.Status, MaxStatusBytes)
	clip(&r.Error, MaxErrorBytes)
	if len(r.Services) > MaxServices {
		r.Services, cut = append([]ServiceStatus(nil), r.Services[:MaxServices]...), true
	}
	for i := range r.Services {
		s := &r.Services[i]
		for _, f := range []*string{&s.Name, &s.State, &s.Health, &s.ContainerID, &s.Change} {
			clip(f, MaxServiceFieldBytes)
		}
		if n := len(s.LogTail); n > MaxLogTailLines {
			s.LogTail, cut = append([]string(nil), s.LogTail[n-MaxLogTailLines:]...), true
		}
		for j := range s.LogTail {
			clip(&s.LogTail[j], MaxLogTailLineBytes)
		}
	}
	return cut
}

// Clip bounds HELLO's text fields and its results, keeping the first MaxUnackedResults;
// it reports whether anything was cut.
func (h *Hello) Clip() bool {
	cut := false
	if len(h.Features) > MaxHelloFeatures {
		h.Features, cut = append([]string(nil), h.Features[:MaxHelloFeatures]...), true
	}
	fields := []*string{&h.AgentVersion, &h.Hostname, &h.Docker, &h.Compose, &h.Platform}
	for i := range h.Features {
		fields = append(fields, &h.Features[i])
	}
	for _, f := range fields {
		if len(*f) > MaxHelloFieldBytes {
			*f, cut = Truncate(*f, MaxHelloFieldBytes), true
		}
	}
	if len(h.UnackedResults) > MaxUnackedResults {
		h.UnackedResults, cut = append([]JobResult(nil), h.UnackedResults[:MaxUnackedResults]...), true
	}
	for i := range h.UnackedResults {
		cut = h.UnackedResults[i].Clip() || cut
	}
	return cut
}

// Clip bounds the plan a JOB_PHASE carries: at most MaxServices names in all, each
// within MaxServiceFieldBytes. It reports whether anything was cut.
func (p *JobPhase) Clip() bool {
	if p.Plan == nil {
		return false
	}
	cut, left := false, MaxServices
	for _, l := range p.Plan.Lists() {
		names := *l.Names
		if len(names) > left {
			names, cut = append([]string(nil), names[:left]...), true
		}
		left -= len(names)
		for i := range names {
			if len(names[i]) > MaxServiceFieldBytes {
				names[i], cut = Truncate(names[i], MaxServiceFieldBytes), true
			}
		}
		*l.Names = names
	}
	return cut
}
