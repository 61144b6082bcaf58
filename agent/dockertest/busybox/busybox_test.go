package busybox_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/dockertest/busybox"
)

func TestImage_RunsAShellAsRootAndIsImportedOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tag, _, err := busybox.Image(ctx, "stagely-test/busybox")
	if err != nil {
		t.Fatal(err)
	}
	again, imported, err := busybox.Image(ctx, "stagely-test/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if again != tag || imported {
		t.Fatalf("second call = %s (imported %v), want %s already present", again, imported, tag)
	}
	out, err := exec.CommandContext(ctx, "docker", "run", "--rm", tag, "sh", "-c", "id -un; stat -c %a /tmp; wget --help 2>&1 | head -1").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run %s: %v: %s", tag, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 3 || lines[0] != "root" || lines[1] != "1777" || !strings.Contains(lines[2], "BusyBox") {
		t.Fatalf("container said %q, want root, a world-writable /tmp and busybox's wget", out)
	}
}
