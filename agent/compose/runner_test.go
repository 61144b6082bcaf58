package compose_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/dockertest"
)

// helperEnv makes the test binary act as a stand-in docker CLI, for behaviour that needs
// precise control of a process tree (a child that outlives its parent, a huge line).
const helperEnv = "STAGELY_COMPOSE_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "lines":
		fmt.Println("first")
		fmt.Fprintln(os.Stderr, "warning on stderr")
		fmt.Println(strings.Repeat("x", 70<<10))
		fmt.Print("last without newline")
		os.Exit(0)
	case "exit7":
		os.Exit(7)
	case "print":
		fmt.Print(os.Getenv(helperEnv + "_PRINT"))
		fmt.Fprint(os.Stderr, os.Getenv(helperEnv+"_EPRINT"))
		os.Exit(0)
	case "plugin":
		// A stand-in compose plugin: the metadata call the docker CLI makes, then its argv.
		if len(os.Args) > 1 && os.Args[1] == "docker-cli-plugin-metadata" {
			fmt.Println(`{"SchemaVersion":"0.1.0","Vendor":"Docker Inc.","ShortDescription":"Docker Compose"}`)
			os.Exit(0)
		}
		for _, a := range os.Args[1:] {
			fmt.Println(a)
		}
		fmt.Println("plugin-env=" + os.Getenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND"))
		os.Exit(0)
	case "spawn":
		// Start a grandchild that ignores nothing and would outlive us if only we were killed.
		child, err := os.StartProcess(os.Args[0], []string{os.Args[0]}, &os.ProcAttr{
			Env:   append(os.Environ(), helperEnv+"=sleep"),
			Files: []*os.File{nil, os.Stdout, os.Stderr},
		})
		if err != nil {
			os.Exit(3)
		}
		fmt.Println(child.Pid)
		time.Sleep(time.Minute)
		os.Exit(0)
	case "sleep":
		time.Sleep(time.Minute)
		os.Exit(0)
	}
}

func helperRunner(mode string) *compose.Runner {
	return compose.NewRunner(compose.RunnerOptions{
		Docker:    os.Args[0],
		Env:       append(os.Environ(), helperEnv+"="+mode),
		KillGrace: time.Second,
	})
}

func TestRunner_ArgvSelectsComposeThroughTheCLIOrThePluginDirectly(t *testing.T) {
	t.Parallel()
	env := append(os.Environ(), helperEnv+"=plugin", "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND=/usr/bin/docker")
	p := compose.Project{Name: "compose", Files: []string{"/srv/a b.yml", "/srv/-o.yml"}}
	tests := []struct {
		name string
		opts compose.RunnerOptions
		want []string
	}{
		{
			name: "docker CLI when Docker is set",
			opts: compose.RunnerOptions{Docker: os.Args[0], Env: env},
			want: []string{"compose", "--project-name=compose", "--file=/srv/a b.yml", "--file=/srv/-o.yml", "up", "-d", "plugin-env=/usr/bin/docker"},
		},
		{
			// A project named "compose" or a file starting with a dash must not be taken
			// for the plugin name or a flag by standalone compose's argument rewriting,
			// and the plugin must not believe the docker CLI started it.
			name: "plugin run directly without the docker CLI's plugin variable",
			opts: compose.RunnerOptions{ComposePlugin: os.Args[0], Env: env},
			want: []string{"--project-name=compose", "--file=/srv/a b.yml", "--file=/srv/-o.yml", "up", "-d", "plugin-env="},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var observed []string
			tt.opts.Observe = func(sub string, args []string, took time.Duration, err error) {
				observed = append(observed, fmt.Sprintf("%s %v %v %v", sub, args, took > 0, err))
			}
			out, err := compose.NewRunner(tt.opts).Output(context.Background(), p, "up", []string{"-d"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Split(strings.TrimSpace(string(out)), "\n"); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("argv = %q, want %q", got, tt.want)
			}
			if want := []string{"up [-d] true <nil>"}; fmt.Sprint(observed) != fmt.Sprint(want) {
				t.Errorf("observed %q, want %q", observed, want)
			}
		})
	}
}

func TestRunner_FindsTheComposePluginWhereTheDockerCLIDoes(t *testing.T) {
	t.Parallel()
	config := t.TempDir()
	plugins := filepath.Join(config, "cli-plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(os.Args[0], filepath.Join(plugins, "docker-compose")); err != nil {
		t.Fatal(err)
	}
	// The docker CLI would fail on the way: a Docker that does not exist proves it is not used.
	r := compose.NewRunner(compose.RunnerOptions{Env: append(os.Environ(), "DOCKER_CONFIG="+config, helperEnv+"=plugin", "PATH=/nonexistent")})
	for range 2 {
		out, err := r.Output(context.Background(), compose.Project{Name: "shop"}, "ps", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Fields(string(out)); len(got) < 2 || got[0] != "--project-name=shop" || got[1] != "ps" {
			t.Errorf("argv = %q, want the plugin started directly", got)
		}
	}
}

func TestRunner_RefusesSubcommandsOutsideTheSafelist(t *testing.T) {
	t.Parallel()
	r := helperRunner("lines")
	for _, sub := range []string{"exec", "cp", "", "up; rm -rf /", "kill"} {
		if err := r.Run(context.Background(), compose.Project{}, sub, nil, nil); err == nil {
			t.Errorf("Run(%q) succeeded; want a refusal", sub)
		}
	}
}

func TestRunner_StreamsEveryLineAndSplitsHugeOnes(t *testing.T) {
	t.Parallel()
	var got []string
	err := helperRunner("lines").Run(context.Background(), compose.Project{}, "version", nil, func(stream, line string) {
		got = append(got, stream+":"+strconv.Itoa(len(line))+":"+line[:min(len(line), 20)])
	})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{"stdout:5:first", "stderr:17:warning on stderr", "stdout:20:last without newline"} {
		if !strings.Contains(joined, want) {
			t.Errorf("lines %q lack %q", joined, want)
		}
	}
	var xs int
	for _, g := range got {
		if strings.HasPrefix(g, "stdout:") && strings.Contains(g, ":xxxx") {
			n, _ := strconv.Atoi(strings.Split(g, ":")[1])
			xs += n
		}
	}
	if xs != 70<<10 {
		t.Errorf("huge line arrived as %d bytes in pieces, want %d", xs, 70<<10)
	}
}

func TestRunner_NonZeroExitIsAnExitError(t *testing.T) {
	t.Parallel()
	err := helperRunner("exit7").Run(context.Background(), compose.Project{}, "up", []string{"-d"}, nil)
	var ee *compose.ExitError
	if !errors.As(err, &ee) || ee.Code != 7 {
		t.Fatalf("err = %v, want ExitError with code 7", err)
	}
}

func TestRunner_CancelKillsTheWholeProcessGroup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	pidCh := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		done <- helperRunner("spawn").Run(ctx, compose.Project{}, "up", nil, func(stream, line string) {
			if pid, err := strconv.Atoi(line); err == nil {
				pidCh <- pid
			}
		})
	}()
	var pid int
	select {
	case pid = <-pidCh:
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not start its child")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	deadline := time.Now().Add(time.Minute)
	for syscall.Kill(pid, 0) == nil {
		// A killed child lingers as a zombie until reaped by init; its /proc state says so.
		if st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat")); err == nil && strings.Contains(string(st), ") Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still alive after cancel", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunner_ThreeServiceProjectComesUpAndPSParses(t *testing.T) {
	t.Parallel()
	img := dockertest.BusyboxImage(t)
	project := dockertest.ProjectName("stg-compose")
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yml")
	yml := fmt.Sprintf(`services:
  web:
    image: %[1]s
    init: true
    command: ["sh", "-c", "while :; do sleep 1; done"]
    healthcheck: {test: ["CMD", "true"], interval: 1s, retries: 3}
  api:
    image: %[1]s
    init: true
    command: ["sh", "-c", "while :; do sleep 1; done"]
  db:
    image: %[1]s
    init: true
    command: ["sh", "-c", "while :; do sleep 1; done"]
`, img)
	if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dockertest.Down(t, project) })

	r := compose.NewRunner(compose.RunnerOptions{})
	p := compose.Project{Name: project, Files: []string{file}, Dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cfg, err := r.Config(ctx, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Names(), ","); got != "api,db,web" {
		t.Errorf("services = %s, want api,db,web", got)
	}
	if !cfg.Services["web"].HasHealthCheck() || cfg.Services["api"].HasHealthCheck() {
		t.Errorf("health checks misread: %+v", cfg.Services)
	}
	var lines []string
	if err := r.Run(ctx, p, "up", []string{"-d", "--wait", "--wait-timeout", "60"}, func(_, line string) { lines = append(lines, line) }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "Started") {
		t.Errorf("up output not streamed: %q", lines)
	}
	cs, err := r.PS(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	byService := map[string]compose.Container{}
	for _, c := range cs {
		byService[c.Service] = c
	}
	for _, svc := range []string{"web", "api", "db"} {
		c, ok := byService[svc]
		if !ok || c.State != "running" || c.ID == "" || c.Project != project {
			t.Errorf("service %s: %+v, want running in %s", svc, c, project)
		}
	}
	if byService["web"].Health != "healthy" {
		t.Errorf("web health = %q, want healthy", byService["web"].Health)
	}

	// PS goes by the project name alone: a compose file it cannot parse does not matter.
	if err := os.WriteFile(file, []byte("services: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if cs, err := r.PS(ctx, p); err != nil || len(cs) != 3 {
		t.Errorf("PS with a broken compose file = %d containers, %v; want 3", len(cs), err)
	}
}
