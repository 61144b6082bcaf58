// Package dockertest builds what tests against the real Docker engine need: a small
// shell-capable image made without a registry, and unique compose project names.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

const busyboxPath = "/bin/busybox"

// BusyboxImage returns the tag of a local image holding Debian's static busybox with every
// applet linked into /bin. It imports the image once; the tag carries a hash of the
// content, so a changed busybox gives a new tag and repeated calls are cheap.
func BusyboxImage(tb testing.TB) string {
	tb.Helper()
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		tb.Fatalf("read %s (apt-get install busybox-static): %v", busyboxPath, err)
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		tb.Fatalf("list busybox applets: %v", err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	sum := sha256.New()
	sum.Write(bin)
	sum.Write([]byte(strings.Join(applets, ",")))
	tag := "stagely-test/busybox:" + hex.EncodeToString(sum.Sum(nil))[:12]

	if exec.Command("docker", "image", "inspect", tag).Run() == nil {
		return tag
	}
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	now := time.Unix(0, 0)
	dirs := []string{"bin/", "tmp/", "etc/", "out/"}
	for _, d := range dirs {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		must(tb, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, ModTime: now}))
	}
	must(tb, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: now}))
	_, err = tw.Write(bin)
	must(tb, err)
	for _, a := range applets {
		if a == "busybox" {
			continue
		}
		must(tb, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", ModTime: now}))
	}
	passwd := []byte("root:x:0:0:root:/:/bin/sh\n")
	must(tb, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd)), ModTime: now}))
	_, err = tw.Write(passwd)
	must(tb, err)
	must(tb, tw.Close())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "import", "--change", "ENV PATH=/bin", "-", tag)
	cmd.Stdin = &rootfs
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("docker import %s: %v: %s", tag, err, out)
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

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(fmt.Errorf("build busybox rootfs: %w", err))
	}
}
