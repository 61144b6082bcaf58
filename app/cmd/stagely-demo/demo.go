package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"time"

	"github.com/stagely/stagely/agent/dockertest/busybox"
	"github.com/stagely/stagely/app/samplerepo"
	"github.com/stagely/stagely/app/seal"
	"github.com/stagely/stagely/githubsim"
	"github.com/stagely/stagely/store"
)

const (
	demoLogin   = "demo"
	demoRepo    = "demo/hello"
	demoBranch  = "main"
	agentName   = "demo-box"
	workerScope = "worker"
	checkDeploy = "Stagely / deploy"
	deployLimit = 3 * time.Minute
	// demoHook is the sample's pre_deploy hook: it takes a second, so the streamed log shows
	// a hook at work between the build and the swap.
	demoHook = "echo migrating the database; sleep 1; echo migrations applied"
)

// demo is one run: what it started, so stop can end exactly that.
type demo struct {
	opt    options
	getenv func(string) string
	out    *reporter

	admin     *adminDB
	dbName    string
	dsn       string
	sim       *githubsim.Sim
	ep        githubsim.Endpoints
	server    *process
	serverURL string
	agent     *process
	st        *store.Store
	keys      *seal.Keyring
	project   store.Project
	agentRow  store.Agent
	repo      samplerepo.Repo
	inst      int64      // githubsim's installation id
	userGHID  int64      // githubsim's id of the demo user
	checkRun  int64      // the last deploy check run, whose Redeploy button the demo presses
	api       *apiClient // the dashboard API with a signed-in session; nil without /auth
	signInURL string     // the URL that signs a browser in, when the server has /auth
	// caddy routes the pull request's preview; caddyAdmin is its admin API and previewListen
	// the agent's preview server in it (plain HTTP on loopback).
	caddy         *process
	caddyAdmin    string
	previewListen string
}

// script runs every step in order; the first failure ends it with an error naming the step.
func (d *demo) script(ctx context.Context) error {
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"check the machine", d.preflight},
		{"clean up the last run", d.cleanupLastRun},
		{"start githubsim", d.startGitHub},
		{"create the database", d.createDatabase},
		{"start the server", d.startServer},
		{"install the GitHub App", d.installApp},
		{"register the project and the agent", d.register},
		{"start Caddy", d.startCaddy},
		{"start the agent", d.startAgent},
		{"push and deploy", d.pushAndDeploy},
		{"change one service's secret and redeploy", d.secretRedeploy},
		{"open a pull request and deploy its preview", d.pullRequestPreview},
		{"dashboard", d.dashboard},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func (d *demo) preflight(ctx context.Context) error {
	dockerV, err := commandLine(ctx, "docker", "version", "--format", "{{.Server.Version}}")
	if err != nil {
		return fmt.Errorf("no Docker engine answers: %w (run scripts/ensure-docker.sh, or `make demo`, which runs it)", err)
	}
	composeV, err := commandLine(ctx, "docker", "compose", "version", "--short")
	if err != nil {
		return fmt.Errorf("the docker compose plugin is missing: %w (run scripts/ensure-docker.sh)", err)
	}
	serverV, err := commandLine(ctx, d.opt.serverBin, "--version")
	if err != nil {
		return fmt.Errorf("%s --version: %w", d.opt.serverBin, err)
	}
	agentV, err := commandLine(ctx, d.opt.agentBin, "--version")
	if err != nil {
		return fmt.Errorf("%s --version: %w", d.opt.agentBin, err)
	}
	d.admin, err = openAdmin(ctx, d.opt.adminURL)
	if err != nil {
		return err
	}
	d.out.step("machine", "Docker %s, compose %s, PostgreSQL at %s, %s, %s", dockerV, composeV, hostOf(d.opt.adminURL), serverV, agentV)
	return nil
}

func (d *demo) cleanupLastRun(ctx context.Context) error {
	prev, err := readState(d.opt.workdir)
	if err != nil {
		return err
	}
	var cleaned []string
	for _, p := range prev.ComposeProjects {
		if err := composeDown(ctx, p); err != nil {
			return err
		}
		cleaned = append(cleaned, "compose project "+p)
	}
	if err := resetWorkdir(d.opt.workdir); err != nil {
		return err
	}
	dropped, err := d.admin.dropStale(ctx)
	if err != nil {
		return err
	}
	for _, n := range dropped {
		cleaned = append(cleaned, "database "+n)
	}
	if len(cleaned) == 0 {
		cleaned = []string{"nothing left over"}
	}
	d.out.step("cleanup", "%s; workdir %s", strings.Join(cleaned, ", "), d.opt.workdir)

	image, imported, err := busybox.Image(ctx, "stagely-demo/busybox")
	if err != nil {
		return err
	}
	how := "already present"
	if imported {
		how = "imported from " + busybox.Path + " (no registry needed)"
	}
	d.out.step("image", "%s %s", image, how)
	port, err := freePort(0)
	if err != nil {
		return err
	}
	d.repo = samplerepo.Repo{Image: image, Port: port, Page: "Hello from Stagely! Deployed by a push.\n", Hook: demoHook}
	return nil
}

func (d *demo) startGitHub(ctx context.Context) error {
	d.sim = githubsim.New(githubsim.Options{})
	d.ep = d.sim.Start()
	d.userGHID = d.sim.AddUser(demoLogin)
	// Whoever opens the sign-in URL "clicks Authorize" as the demo user at once.
	d.sim.SetAuthorizeAs(demoLogin)
	d.inst = d.sim.AddInstallation(demoLogin)
	if err := d.sim.CreateRepo(d.inst, demoRepo, demoBranch); err != nil {
		return err
	}
	d.out.step("githubsim", "GitHub at %s with user %s and an empty repository %s (branch %s)", d.ep.Web, demoLogin, demoRepo, demoBranch)
	return nil
}

func (d *demo) createDatabase(ctx context.Context) error {
	name, dsn, err := d.admin.create(ctx)
	if err != nil {
		return err
	}
	d.dbName, d.dsn = name, dsn
	d.out.step("database", "created %s (the server migrates it)", name)
	return nil
}

// commandLine runs a command and returns its first line of output.
func commandLine(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", err
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line, nil
}

// freePort returns want when it is free on 127.0.0.1, else (or when want is 0) any free port.
func freePort(want int) (int, error) {
	if want != 0 {
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", want)); err == nil {
			ln.Close()
			return want, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func hostOf(raw string) string {
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		raw = raw[i+1:]
	}
	host, _, _ := strings.Cut(strings.TrimPrefix(raw, "postgres://"), "/")
	return host
}
