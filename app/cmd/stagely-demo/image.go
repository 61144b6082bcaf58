package main

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

const busyboxPath = "/bin/busybox"

// busyboxImage returns the tag of a local image holding Debian's static busybox with every
// applet linked into /bin, importing it when missing. There is no registry to pull from, so
// the sample repository's services run on this image.
//
// agent/dockertest does the same for tests, but its helpers take a testing.TB and fail the
// test; the demo is a program, so it has this small copy that returns errors.
func busyboxImage(ctx context.Context) (tag string, imported bool, err error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w (apt-get install busybox-static, or run scripts/ensure-docker.sh)", busyboxPath, err)
	}
	out, err := exec.CommandContext(ctx, busyboxPath, "--list").Output()
	if err != nil {
		return "", false, fmt.Errorf("list busybox applets: %w", err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	sum := sha256.New()
	sum.Write(bin)
	sum.Write([]byte(strings.Join(applets, ",")))
	tag = "stagely-demo/busybox:" + hex.EncodeToString(sum.Sum(nil))[:12]
	if exec.CommandContext(ctx, "docker", "image", "inspect", tag).Run() == nil {
		return tag, false, nil
	}

	rootfs, err := busyboxRootfs(bin, applets)
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

func busyboxRootfs(bin []byte, applets []string) (*bytes.Buffer, error) {
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
	for _, d := range []string{"bin/", "etc/", "www/"} {
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
