// Package busybox makes a local Docker image from the host's static busybox, so tests and
// the demo run containers with a shell without a registry to pull from. It returns errors
// instead of failing a test, so that programs can use it; dockertest wraps it for tests.
package busybox

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// Path is where Debian's busybox-static package installs the binary.
const Path = "/bin/busybox"

// layoutVersion names the rootfs Image builds; it is part of the tag, so a changed layout
// never reuses an image built with the old one.
const layoutVersion = "1"

// Image returns the tag of a local image, in the repository repo (such as
// "stagely-test/busybox"), holding the host's static busybox with every applet linked into
// /bin. It imports the image when missing and says whether it did. The tag carries a hash
// of the content, so a changed busybox gives a new tag and repeated calls are cheap.
func Image(ctx context.Context, repo string) (tag string, imported bool, err error) {
	bin, err := os.ReadFile(Path)
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w (apt-get install busybox-static, or run scripts/ensure-docker.sh)", Path, err)
	}
	out, err := exec.CommandContext(ctx, Path, "--list").Output()
	if err != nil {
		return "", false, fmt.Errorf("list busybox applets: %w", err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	sum := sha256.New()
	sum.Write(bin)
	sum.Write([]byte(strings.Join(applets, ",")))
	sum.Write([]byte(layoutVersion))
	tag = repo + ":" + hex.EncodeToString(sum.Sum(nil))[:12]
	if exec.CommandContext(ctx, "docker", "image", "inspect", tag).Run() == nil {
		return tag, false, nil
	}

	rootfs, err := rootfs(bin, applets)
	if err != nil {
		return "", false, fmt.Errorf("build busybox rootfs: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "import", "--change", "ENV PATH=/bin", "-", tag)
	cmd.Stdin = rootfs
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", false, fmt.Errorf("docker import %s: %w: %s", tag, err, out)
	}
	return tag, true, nil
}

// rootfs is the image's only layer: /bin with busybox and its applets as links, a
// world-writable /tmp, and an /etc/passwd naming root.
func rootfs(bin []byte, applets []string) (*bytes.Buffer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	write := func(h *tar.Header, body []byte) error {
		h.ModTime = epoch
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	for _, d := range []string{"bin/", "etc/"} {
		if err := write(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}, nil); err != nil {
			return nil, err
		}
	}
	if err := write(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}, nil); err != nil {
		return nil, err
	}
	if err := write(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))}, bin); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if a == "busybox" {
			continue
		}
		if err := write(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox"}, nil); err != nil {
			return nil, err
		}
	}
	passwd := []byte("root:x:0:0:root:/:/bin/sh\n")
	if err := write(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd))}, passwd); err != nil {
		return nil, err
	}
	return &buf, tw.Close()
}
