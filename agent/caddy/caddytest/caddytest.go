// Package caddytest runs a real Caddy for tests: `caddy run` with a temporary config,
// its admin API and every listener on free loopback ports, its storage in a temporary
// directory. The distribution's caddy package must be installed
// (scripts/ensure-debian-tools.sh installs it).
package caddytest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Caddy is one running Caddy.
type Caddy struct {
	// Admin is the admin API's URL.
	Admin string
	// HTTPPort and HTTPSPort are free loopback ports set as Caddy's http_port and
	// https_port, so automatic HTTPS never binds 80 or 443.
	HTTPPort, HTTPSPort int
	dir                 string
	config              string
	cmd                 *exec.Cmd
	done                chan struct{}
}

// Start starts Caddy and stops it when the test ends.
func Start(tb testing.TB) *Caddy {
	tb.Helper()
	if _, err := exec.LookPath("caddy"); err != nil {
		tb.Fatal("caddy is not installed: apt-get install caddy (scripts/ensure-debian-tools.sh does)")
	}
	dir := tb.TempDir()
	c := &Caddy{dir: dir, config: filepath.Join(dir, "caddy.json"), HTTPPort: FreePort(tb), HTTPSPort: FreePort(tb)}
	admin := fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
	c.Admin = "http://" + admin
	cfg := map[string]any{
		"admin":   map[string]any{"listen": admin},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(dir, "storage")},
		"apps": map[string]any{
			"http": map[string]any{"http_port": c.HTTPPort, "https_port": c.HTTPSPort},
			// The local CA must not try to install its root into the machine's trust store.
			"pki": map[string]any{"certificate_authorities": map[string]any{"local": map[string]any{"install_trust": false}}},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(c.config, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	c.start(tb)
	tb.Cleanup(func() { c.Stop(tb) })
	return c
}

func (c *Caddy) start(tb testing.TB) {
	tb.Helper()
	cmd := exec.Command("caddy", "run", "--config", c.config)
	cmd.Env = append(os.Environ(), "HOME="+c.dir, "XDG_DATA_HOME="+filepath.Join(c.dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(c.dir, "config"))
	log, err := os.Create(filepath.Join(c.dir, fmt.Sprintf("caddy-%d.log", time.Now().UnixNano())))
	if err != nil {
		tb.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start caddy: %v", err)
	}
	c.cmd = cmd
	c.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(c.Admin + "/config/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-c.done:
			b, _ := os.ReadFile(log.Name())
			tb.Fatalf("caddy exited at start:\n%s", b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("caddy's admin API did not answer within a minute: %v", err)
		}
	}
}

// Stop stops Caddy; it may be called more than once.
func (c *Caddy) Stop(tb testing.TB) {
	tb.Helper()
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

// Restart stops Caddy and starts it again from its initial config, as a restarted
// system service does: everything the admin API added is gone.
func (c *Caddy) Restart(tb testing.TB) {
	tb.Helper()
	c.Stop(tb)
	c.start(tb)
}

// Get sends a GET for path to the HTTP listener at addr with host as its Host header.
func Get(ctx context.Context, addr, host, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// FreePort returns a loopback TCP port nothing listens on.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
