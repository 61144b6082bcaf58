package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo_NonInteractiveRunsTheWholeLoopTwice is how `make test` covers `make demo`: the
// script runs against real PostgreSQL, Docker and the binaries the Dockerfiles build, and a
// second run in the same workdir works too.
func TestDemo_NonInteractiveRunsTheWholeLoopTwice(t *testing.T) {
	workdir := t.TempDir()
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
		var out bytes.Buffer
		err := run(ctx, []string{"--non-interactive", "--workdir", workdir, "--port", "0",
			"--server-bin", built.Server, "--agent-bin", built.Agent}, os.Getenv, &out, &out)
		cancel()
		text := out.String()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, text)
		}
		if i == 0 {
			t.Logf("first run's output:\n%s", text)
		}
		assertDemoOutput(t, text)
		assertCleanedUp(t, text)
	}
}

func assertDemoOutput(t *testing.T, text string) {
	t.Helper()
	stepLine := regexp.MustCompile(`^\[ *\d+\.\d\ds\] [A-Za-z -]+: `)
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if l != "" && !strings.HasPrefix(l, "           | ") && !stepLine.MatchString(l) {
			t.Errorf("line without a timing: %q", l)
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] server: http://127\.0\.0\.1:\d+ ready`),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] agent: online in `),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] webhook: push delivery \S+ -> HTTP 202 in `),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] webhook: server: deployed as #\d+ \(hello\)`),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] DEPLOY: #\d+ sent to agent "demo-box"`),
		regexp.MustCompile(`(?m)^ +\| stdout +migrating the database$`),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] check run: "Stagely / deploy" success: `),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] service: GET http://127\.0\.0\.1:\d+/ -> 200 "Hello from Stagely! Deployed by a push\."`),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] webhook: server: redeploy of #\d+`),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] containers: only worker was recreated`),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] webhook: server: .*preview of #1 queued as #\d+ \(hello\)`),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] check run: "Stagely / preview" success: `),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] preview URL: https://web--pr-1--hello\.preview\.localhost — on this machine: http://web--pr-1--hello\.preview\.localhost:\d+/`),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] dashboard: http://127\.0\.0\.1:\d+/`),
		regexp.MustCompile(`(?m)^\[ *[\d.]+s\] done: every step passed$`),
	} {
		if !want.MatchString(text) {
			t.Errorf("output lacks %s", want)
		}
	}
	if n := strings.Count(text, `check run: "Stagely / deploy" success`); n != 2 {
		t.Errorf("%d successful deploy check runs, want 2 (push, redeploy)", n)
	}
	for _, secret := range []string{"redis://queue-1", "redis://queue-2", "hello from a secret"} {
		if strings.Contains(text, secret) {
			t.Errorf("a secret value (%s) was printed", secret)
		}
	}
}

// assertCleanedUp checks that the compose project and the database the run printed are gone.
func assertCleanedUp(t *testing.T, text string) {
	t.Helper()
	m := regexp.MustCompile(`stopped and removed: .*compose project (\S+), database (\S+) `).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no cleanup line naming the compose project and the database:\n%s", text)
	}
	// The production project and the pull request's preview.
	for _, project := range []string{m[1], m[1] + "-pr-1"} {
		out, err := exec.Command("docker", "ps", "-a", "-q", "--filter", "label=com.docker.compose.project="+project).Output()
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("containers of %s left behind: %s", project, out)
		}
	}
	admin, err := sql.Open("postgres", adminURLForTest())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	if err := admin.QueryRow(`SELECT count(*) FROM pg_database WHERE datname = $1`, m[2]).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s left behind", m[2])
	}
}

func adminURLForTest() string {
	if v := os.Getenv("STAGELY_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return defaultAdminURL
}
