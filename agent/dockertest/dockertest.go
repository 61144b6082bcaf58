// Package dockertest builds what tests against the real Docker engine need: a small
// shell-capable image made without a registry, and unique compose project names.
package dockertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/dockertest/busybox"
)

// BusyboxImage returns the tag of a local image holding Debian's static busybox with every
// applet linked into /bin (see busybox.Image), importing it once.
func BusyboxImage(tb testing.TB) string {
	tb.Helper()
	tag, _, err := busybox.Image(context.Background(), "stagely-test/busybox")
	if err != nil {
		tb.Fatal(err)
	}
	return tag
}

// ProjectName returns a compose project name unique to this test run.
func ProjectName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := strings.ToLower(prefix) + "-" + hex.EncodeToString(b)
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, name)
}

// Down removes a compose project's containers, networks and volumes; tests register it with t.Cleanup.
func Down(tb testing.TB, project string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Without -f compose finds the containers by their project label.
	out, err := exec.CommandContext(ctx, "docker", "compose", "-p", project, "down", "-v", "--remove-orphans", "-t", "0").CombinedOutput()
	if err != nil {
		tb.Errorf("docker compose -p %s down: %v: %s", project, err, out)
	}
}

// ContainerEnv returns the environment a container's processes start with, exactly.
func ContainerEnv(tb testing.TB, id string) map[string]string {
	tb.Helper()
	out, err := exec.Command("docker", "inspect", "--format", "{{json .Config.Env}}", id).Output()
	if err != nil {
		tb.Fatalf("docker inspect %s: %v", id, err)
	}
	var list []string
	if err := json.Unmarshal(out, &list); err != nil {
		tb.Fatalf("parse env of %s: %v", id, err)
	}
	env := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}
