package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagely/stagely/app/childproc"
	"github.com/stagely/stagely/app/logtest"
)

// debianMirror is where debootstrap fetches the fresh roots (STAGELY_DEBIAN_MIRROR overrides it).
const debianMirror = "http://deb.debian.org/debian"

// rootEnv is the environment of a root shell on a fresh server: nothing of the test's.
var rootEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb"}

// TestInstallOnFreshDebian runs the dashboard's command as root in freshly debootstrapped
// Debian roots that have no Docker, against the running server on this machine: install.sh
// installs Docker from the distribution's packages for real. Each root runs in private mount
// and PID namespaces (unshare) that share this machine's network, so it reaches the server on
// loopback and Debian's mirror; no systemd runs there. A policy-rc.d, as every Debian chroot and
// container image has, keeps the packages' scripts from starting dockerd inside the root, where
// it would rewrite this machine's iptables and bridge.
//
//   - Debian 12 (bookworm): docker.io installs, but its docker-compose is compose v1, so the
//     installer stops, saying so, with the manual steps for the plugin; nothing is installed.
//   - Debian 13 (trixie): docker.io and docker-compose (compose v2) install; no engine can run
//     there, so the installer stops, saying systemd is not running and how to start Docker.
//     Given this machine's engine (its socket mounted into the root), the same command then
//     installs the agent, says systemd is not running and prints the command to start it;
//     that command brings the agent online, and a push deploys through the distribution's
//     docker and compose.
func TestInstallOnFreshDebian(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"debootstrap", "unshare", "chroot", "sudo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: scripts/ensure-debian-tools.sh installs it", tool)
		}
	}
	t.Run("bookworm has no compose v2 package: the installer says so, with the manual steps", func(t *testing.T) {
		t.Parallel()
		root := freshRoot(t, "bookworm")
		s, agent := newInstallStack(t)
		out, err := inRoot(t, root, false, agent.InstallCommand)
		t.Logf("install.sh in Debian 12:\n%s", out)
		if err == nil {
			t.Fatal("install.sh succeeded without a compose v2 plugin")
		}
		wantAll(t, out,
			"Debian GNU/Linux 12 (bookworm): installing Docker from the distribution's packages",
			"installing docker.io",
			"not installing docker-compose 1.",
			"that is compose v1, and the agent needs the compose v2 plugin",
			"no compose v2 plugin in the distribution's packages: the agent runs `docker compose`",
			"mkdir -p /usr/local/lib/docker/cli-plugins",
			"docker-compose-linux-"+unameM(t),
		)
		wantFiles(t, root, map[string]bool{"usr/bin/docker": true, "usr/sbin/dockerd": true, "usr/bin/docker-compose": false})
		wantNothingInstalled(t, root)
		s.wantWaiting(agent.Agent.ID)
	})
	t.Run("trixie installs docker.io and compose v2; without an engine it stops, then with one the agent deploys", func(t *testing.T) {
		t.Parallel()
		root := freshRoot(t, "trixie")
		s, agent := newInstallStack(t)
		out, err := inRoot(t, root, false, agent.InstallCommand)
		t.Logf("install.sh in Debian 13, no engine:\n%s", out)
		if err == nil {
			t.Fatal("install.sh succeeded without a Docker engine")
		}
		wantAll(t, out,
			"Debian GNU/Linux 13 (trixie): installing Docker from the distribution's packages",
			"installing docker.io",
			"installing docker-compose 2.",
			"`docker info` fails",
			"systemd is not running here to start it",
			"service docker start",
		)
		wantFiles(t, root, map[string]bool{"usr/bin/docker": true, "usr/libexec/docker/cli-plugins/docker-compose": true})
		wantNothingInstalled(t, root)
		s.wantWaiting(agent.Agent.ID)

		// This machine's engine, as a container would be given it: the same command now installs.
		out, err = inRoot(t, root, true, agent.InstallCommand)
		t.Logf("install.sh in Debian 13, with an engine:\n%s", out)
		if err != nil {
			t.Fatalf("install.sh failed with an engine: %v", err)
		}
		runCmd := "STAGELY_DATA_DIR=/var/lib/stagely /usr/local/bin/stagely-agent --config /etc/stagely/config.json"
		wantAll(t, out, "checksum verified", "compose 2.",
			"systemd is not running on this machine, so the unit was installed but not started",
			"start the agent with: "+runCmd)
		s.linkProject(s.githubID, agent.Agent.ID)
		// exec env: the agent is the namespace's PID 1, which stopInRoot signals, started by the printed command.
		startInRoot(t, root, "exec env "+runCmd)
		s.waitAgentOnline(agent.Agent.ID, "started in Debian 13 with the printed command")
		s.deployPage("trixie\n", "deploy through the agent in Debian 13")
	})
}

// installStack is a server with a signed-in user and a created agent, as the dashboard has them.
type installStack struct {
	*stack
	githubID int64
}

type createdAgent struct {
	Agent          struct{ ID int64 } `json:"agent"`
	Token          string             `json:"token"`
	InstallCommand string             `json:"install_command"`
}

// newInstallStack starts a server that serves the agent TestMain built and creates an agent
// through the API; its install_command is the line the dashboard shows.
func newInstallStack(t *testing.T) (installStack, createdAgent) {
	t.Helper()
	bins := t.TempDir()
	copyFile(t, bin.Agent, filepath.Join(bins, "stagely-agent-linux-"+runtime.GOARCH))
	s := newStack(t, stackOptions{bare: true, serverEnv: []string{"STAGELY_AGENT_DIR=" + bins}})
	client, githubID := s.signIn("alice")
	var created createdAgent
	s.apiDo(client, http.MethodPost, "/api/agents", map[string]string{"name": "fresh"}, &created)
	if !strings.HasPrefix(created.InstallCommand, "export STAGELY_TOKEN=") {
		t.Fatalf("install_command = %q", created.InstallCommand)
	}
	return installStack{stack: s, githubID: githubID}, created
}

// wantWaiting fails unless the agent has not traded its bootstrap token: a failed install spent nothing.
func (s installStack) wantWaiting(id int64) {
	s.t.Helper()
	a, err := s.st.AgentByID(s.ctx, id)
	if err != nil {
		s.t.Fatal(err)
	}
	if a.BootstrapUsedAt.Valid || a.TokenHash != "" {
		s.t.Errorf("agent %d traded its bootstrap token in an install that failed", id)
	}
}

// freshRoot extracts the cached debootstrapped root of suite into a new folder, made by
// debootstrap on first use (minbase, with the curl, ca-certificates and sudo a cloud image has).
// The cache, in the user's cache folder keyed by suite and architecture, makes repeat runs
// fast: the root is the same, and the packages install.sh installs are fetched anew each run.
func freshRoot(t *testing.T, suite string) string {
	t.Helper()
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(cacheDir, "stagely", "debootstrap", fmt.Sprintf("%s-minbase-%s.tar", suite, runtime.GOARCH))
	if _, err := os.Stat(tarball); errors.Is(err, os.ErrNotExist) {
		debootstrap(t, suite, tarball)
	} else if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	run(t, 5*time.Minute, "tar", "-C", root, "-xpf", tarball)
	// As in Debian's container images: packages start no services, and dpkg does not fsync
	// every file it unpacks (minutes for Docker's packages on a busy disk); the root is thrown away.
	for path, content := range map[string]string{
		"usr/sbin/policy-rc.d":                  "#!/bin/sh\nexit 101\n",
		"etc/dpkg/dpkg.cfg.d/stagely-unsafe-io": "force-unsafe-io\n",
	} {
		if err := os.WriteFile(filepath.Join(root, path), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// This machine's name server and host name (sudo looks the host name up), as a server has its own.
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for path, content := range map[string][]byte{
		"etc/resolv.conf": resolv,
		"etc/hosts":       []byte("127.0.0.1 localhost\n127.0.1.1 " + host + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(root, path), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// debootstrap makes the root of suite and stores it as tarball (written beside, then renamed, so
// a concurrent or interrupted run never sees half of one).
func debootstrap(t *testing.T, suite, tarball string) {
	t.Helper()
	mirror := os.Getenv("STAGELY_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = debianMirror
	}
	if err := os.MkdirAll(filepath.Dir(tarball), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now()
	run(t, time.Hour, "debootstrap", "--variant=minbase", "--include=curl,ca-certificates,sudo", suite, dir, mirror)
	tmp := fmt.Sprintf("%s.%d.tmp", tarball, os.Getpid())
	run(t, 5*time.Minute, "tar", "-C", dir, "-cf", tmp, ".")
	if err := os.Rename(tmp, tarball); err != nil {
		t.Fatal(err)
	}
	t.Logf("debootstrapped %s in %v, cached as %s", suite, time.Since(start).Round(time.Second), tarball)
}

// run runs a command that must succeed within d.
func run(t *testing.T, d time.Duration, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(string(out), 40))
	}
}

// rootCommand runs script as root's shell in root, in private mount and PID namespaces that
// end with it (and take every process it started along); withEngine mounts this machine's
// Docker socket into the root first.
func rootCommand(ctx context.Context, root string, withEngine bool, script string) *exec.Cmd {
	mount := ""
	if withEngine {
		mount = `: >"$0/run/docker.sock" && mount --bind /run/docker.sock "$0/run/docker.sock" && `
	}
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc="+root+"/proc",
		"/bin/sh", "-c", mount+`exec chroot "$0" /bin/sh -c "$1"`, root, script)
	cmd.Env = rootEnv
	return cmd
}

// inRoot runs script in root (rootCommand) and returns its output.
func inRoot(t *testing.T, root string, withEngine bool, script string) (string, error) {
	t.Helper()
	// Only a guard against a hung install: on a loaded 2-core machine, apt-get took 15 minutes
	// to install docker.io here.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	out, err := rootCommand(ctx, root, withEngine, script).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the command in %s did not end within an hour:\n%s", root, tail(string(out), 40))
	}
	return string(out), err
}

// startInRoot starts script in root with this machine's engine and stops it when the test ends.
func startInRoot(t *testing.T, root, script string) {
	t.Helper()
	cmd := rootCommand(context.Background(), root, true, script)
	out := &logtest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	proc, err := childproc.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{Process: proc, name: "agent in " + filepath.Base(root), out: out}
	t.Cleanup(func() {
		// unshare blocks SIGINT and SIGTERM while it waits for its child: the namespace's PID 1
		// is told to stop itself, and unshare then exits with it.
		if children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid)); err == nil {
			for _, f := range strings.Fields(string(children)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGTERM)
				}
			}
		}
		p.stop(t)
		if t.Failed() {
			t.Logf("---- %s ----\n%s", p.name, tail(out.String(), 100))
		}
	})
}

func wantAll(t *testing.T, out string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(out, p) {
			t.Errorf("the installer's output lacks %q", p)
		}
	}
}

// wantFiles checks which of the paths under root exist.
func wantFiles(t *testing.T, root string, want map[string]bool) {
	t.Helper()
	for path, exists := range want {
		_, err := os.Stat(filepath.Join(root, path))
		if got := err == nil; got != exists {
			t.Errorf("/%s exists: %v, want %v (%v)", path, got, exists, err)
		}
	}
}

// wantNothingInstalled checks a stopped install left no agent, config or unit behind.
func wantNothingInstalled(t *testing.T, root string) {
	t.Helper()
	wantFiles(t, root, map[string]bool{
		"usr/local/bin/stagely-agent": false, "etc/stagely": false, "etc/systemd/system/stagely-agent.service": false,
	})
}

func unameM(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("uname", "-m").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(out))
}
