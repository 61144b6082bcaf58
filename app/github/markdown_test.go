package github_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/stagely/stagely/app/github"
)

const (
	shaNew = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
	shaOld = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"
)

func TestSummary_MatchesGoldenFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		golden string
		report github.Report
	}{
		{"success", github.Report{
			Status: "success", SHA: shaNew, Environment: "shop", Duration: 12340 * time.Millisecond,
			Services: []github.ServiceRow{
				{Name: "backend", State: "running", Health: "healthy", ContainerID: "0123456789abcdef0123"},
				{Name: "worker", State: "running", ContainerID: "fedcba9876543210"},
			},
			LogTail: []string{"\x1b[32m✔\x1b[0m Container shop-backend-1  Started", "Container shop-worker-1  Started"},
		}},
		{"rolled_back_unhealthy", github.Report{
			Status: "rolled_back", SHA: shaNew, Duration: 95 * time.Second, RolledBackTo: shaOld,
			Error: "service backend is unhealthy after 60s", FailedService: "backend",
			Services: []github.ServiceRow{
				{Name: "backend", State: "running", Health: "unhealthy", ContainerID: "0123456789abcdef"},
				{Name: "db", State: "running", Health: "healthy", ContainerID: "abcdefabcdef"},
			},
			LogTail: []string{"backend  | listening on :8080", "backend  | panic: config missing"},
		}},
		{"failure_hostile_text", github.Report{
			Status: "failure", SHA: shaNew, Environment: "my|env", Duration: 3 * time.Second,
			Error:         "pre_deploy hook failed:\n```\nexit 1\n```\nsee `logs`",
			FailedService: "we|b`x",
			Services: []github.ServiceRow{
				{Name: "we|b`x", State: "exited (1)", Health: "", ContainerID: "not-hex|id"},
				{Name: "multi\nline", State: "running\r\nreally", Health: "<b>healthy</b>"},
			},
			LogTail: []string{"output with ``` a fence", "and ```` a longer one", "progress 10%\rprogress 100%"},
		}},
		{"timed_out", github.Report{
			Status: "timed_out", SHA: shaNew, Duration: 5*time.Minute + 7*time.Second, FailedService: "api",
			Services: []github.ServiceRow{{Name: "api", State: "running", Health: "starting", ContainerID: "0123456789ab"}},
		}},
		{"cancelled_no_services", github.Report{Status: "cancelled", SHA: shaNew, Duration: 800 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			title, summary, text := github.Summary(tt.report)
			got := fmt.Sprintf("-- title --\n%s\n-- summary --\n%s-- text --\n%s", title, summary, text)
			assertGolden(t, filepath.Join("testdata", tt.golden+".golden"), got)
		})
	}
}

// assertGolden compares got with a golden file and, on a mismatch, writes got beside it as .actual
// for a person to diff and, if right, move into place.
func assertGolden(t *testing.T, golden, got string) {
	t.Helper()
	want, err := os.ReadFile(golden)
	if err == nil && string(want) == got {
		_ = os.Remove(golden + ".actual")
		return
	}
	actual := golden + ".actual"
	if werr := os.WriteFile(actual, []byte(got), 0o644); werr != nil {
		t.Fatalf("write %s: %v", actual, werr)
	}
	if err != nil {
		t.Fatalf("read golden: %v (actual output written to %s)", err, actual)
	}
	t.Fatalf("output differs from %s; actual written to %s:\n%s", golden, actual, got)
}

func TestSummary_LongLogKeepsTheTailInsideGitHubsLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		lines []string
	}{
		{"many short lines", func() []string {
			var l []string
			for i := range 20_000 {
				l = append(l, fmt.Sprintf("line %05d ````` with backticks", i))
			}
			return l
		}()},
		{"one enormous line", []string{strings.Repeat("x", 200_000) + "END"}},
		{"astral characters", func() []string {
			var l []string
			for range 5_000 {
				l = append(l, strings.Repeat("🚀", 10))
			}
			return append(l, "last")
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, text := github.Summary(github.Report{Status: "failure", SHA: shaNew, LogTail: tt.lines})
			if n := utf16Len(text); n > github.MaxOutputChars {
				t.Fatalf("text is %d UTF-16 units (%d characters), over %d", n, utf8.RuneCountInString(text), github.MaxOutputChars)
			}
			last := tt.lines[len(tt.lines)-1]
			if len(last) > 100 {
				last = last[len(last)-100:]
			}
			if !strings.Contains(text, last+"\n") {
				t.Fatal("text lost the last log line")
			}
			lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
			open, closing := lines[2], lines[len(lines)-1]
			if !strings.HasPrefix(open, closing) || !strings.HasSuffix(open, "text") || strings.Trim(closing, "`") != "" {
				t.Fatalf("fences broken: opens %q, closes %q", open, closing)
			}
		})
	}
}

// utf16Len counts UTF-16 code units with the standard library, not with the code under test.
func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }
