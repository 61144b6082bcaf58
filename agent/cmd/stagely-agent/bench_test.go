package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/agenttest"
)

// buildAgent builds the agent binary the way a release does: stripped, version stamped.
func buildAgent(tb testing.TB, dir string) string {
	tb.Helper()
	out := filepath.Join(dir, "stagely-agent")
	goBin, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("find the go tool: %v", err)
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w -X main.version=bench", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// BenchmarkBinarySize reports the size of the stripped agent binary (target < 15 MB).
// Run: go test -run '^$' -bench BinarySize -benchtime 1x ./cmd/stagely-agent
func BenchmarkBinarySize(b *testing.B) {
	dir := b.TempDir()
	var bin string
	for b.Loop() {
		bin = buildAgent(b, dir)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	mb := float64(fi.Size()) / (1 << 20)
	b.ReportMetric(mb, "MB-stripped")
	b.Logf("stripped binary: %.2f MB (target < 15 MB)", mb)
}

// BenchmarkIdleRSS starts the real binary against the protocol test server, lets it sit
// connected and idle for 3 s, and reports its resident memory (target < 20 MB).
// Run: go test -run '^$' -bench IdleRSS -benchtime 1x ./cmd/stagely-agent
func BenchmarkIdleRSS(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Fatalf("reads /proc/<pid>/status: linux only, not %s", runtime.GOOS)
	}
	bin := buildAgent(b, b.TempDir())
	var rssMB float64
	for b.Loop() {
		rssMB = idleRSS(b, bin)
	}
	b.ReportMetric(rssMB, "MB-rss")
	b.Logf("idle RSS: %.2f MB (target < 20 MB)", rssMB)
}

func idleRSS(b *testing.B, bin string) float64 {
	srv := agenttest.New(b, agenttest.Options{Token: goodToken, AutoAck: true})
	cfg := filepath.Join(b.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"server_url":"`+srv.URL()+`","token":"`+goodToken+`"}`), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Env = []string{"STAGELY_DATA_DIR=" + b.TempDir(), "PATH=" + os.Getenv("PATH")}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				b.Errorf("agent exited with %v after SIGTERM, want 0", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			b.Error("agent did not exit after SIGTERM")
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.WaitConnected(ctx, 1); err != nil {
		b.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	kb, err := vmRSSKB(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	return float64(kb) / 1024
}

func vmRSSKB(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, os.ErrNotExist
}
