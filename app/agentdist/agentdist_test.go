package agentdist_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gin-gonic/gin"

	stagely "github.com/stagely/stagely"
	"github.com/stagely/stagely/app/agentdist"
)

// buildAgent cross-compiles the agent for linux/arch the way make build does: CGO off,
// -trimpath, version stamped.
func buildAgent(t *testing.T, arch, dir string) string {
	t.Helper()
	out := filepath.Join(dir, agentdist.BinaryName(arch))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=test-"+arch, "-o", out, "./cmd/stagely-agent")
	cmd.Dir = "../../agent"
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the agent for linux/%s: %v\n%s", arch, err, b)
	}
	return out
}

// serve starts the distribution's routes on a real listener; wrap, if set, sits in front.
func serve(t *testing.T, files fstest.MapFS, dirFiles string, wrap func(http.Handler) http.Handler) (*httptest.Server, *agentdist.Dist) {
	t.Helper()
	opts := agentdist.Options{PublicURL: "http://placeholder.invalid", Unit: stagely.AgentUnit()}
	if files != nil {
		opts.Files = files
	}
	if dirFiles != "" {
		opts.Files = os.DirFS(dirFiles)
	}
	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	var h http.Handler = router
	if wrap != nil {
		h = wrap(router)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	// The script must download from the URL it was served by, so the URL is known only now.
	opts.PublicURL = srv.URL
	d, err := agentdist.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	d.Register(router)
	return srv, d
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestDist_WithoutBinariesEveryDownloadSaysHowToBuildThem(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, fstest.MapFS{"README.md": {Data: []byte("x")}}, "", nil)
	for _, path := range []string{"/install.sh", "/agent/download/SHA256SUMS", "/agent/download/linux/amd64"} {
		code, body := get(t, srv.URL+path)
		if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "built without agent binaries; run make build") {
			t.Errorf("GET %s = %d %q, want 503 saying to run make build", path, code, body)
		}
	}
}

func TestDist_ServesEachBinaryWithItsChecksumAnd404sOtherPlatforms(t *testing.T) {
	t.Parallel()
	amd64 := []byte("\x7fELF amd64 build")
	srv, d := serve(t, fstest.MapFS{agentdist.BinaryName("amd64"): {Data: amd64}}, "", nil)
	sum := sha256.Sum256(amd64)
	want := hex.EncodeToString(sum[:]) + "  stagely-agent-linux-amd64\n"
	if code, body := get(t, srv.URL+"/agent/download/SHA256SUMS"); code != 200 || string(body) != want {
		t.Errorf("SHA256SUMS = %d %q, want %q", code, body, want)
	}
	if code, body := get(t, srv.URL+"/agent/download/linux/amd64"); code != 200 || !bytes.Equal(body, amd64) {
		t.Errorf("GET linux/amd64 = %d %q, want the binary", code, body)
	}
	for _, arch := range []string{"arm64", "riscv64"} {
		if code, body := get(t, srv.URL+"/agent/download/linux/"+arch); code != http.StatusNotFound || !strings.Contains(string(body), "it has linux/amd64") {
			t.Errorf("GET linux/%s = %d %q, want 404 naming linux/amd64", arch, code, body)
		}
	}
	if got := d.Platforms(); len(got) != 1 || got[0] != "linux/amd64" {
		t.Errorf("Platforms() = %v, want [linux/amd64]", got)
	}
}

func TestInstallScript_IsPOSIXShAndQuotesTheServerURL(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, fstest.MapFS{agentdist.BinaryName("amd64"): {Data: []byte("x")}}, "", nil)
	_, script := get(t, srv.URL+"/install.sh")
	f := filepath.Join(t.TempDir(), "install.sh")
	if err := os.WriteFile(f, script, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("dash", "-n", f).CombinedOutput(); err != nil {
		t.Fatalf("dash -n: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Fatal("shellcheck is not installed, so install.sh cannot be checked for bashisms: apt-get install shellcheck (scripts/ensure-debian-tools.sh does)")
	}
	if out, err := exec.Command("shellcheck", "-s", "sh", f).CombinedOutput(); err != nil {
		t.Fatalf("shellcheck -s sh found problems: %v\n%s", err, out)
	}
	if !bytes.Contains(script, []byte("STAGELY_URL='"+srv.URL+"'\n")) || !bytes.Contains(script, []byte("[Unit]\nDescription=Stagely agent")) {
		t.Errorf("the script lacks the server's URL or the systemd unit:\n%s", script)
	}
}

// A URL holding a quote must reach the script as data: the script then refuses it by name
// instead of running what follows the quote.
func TestInstallScript_AURLWithAQuoteStaysData(t *testing.T) {
	t.Parallel()
	d, err := agentdist.New(agentdist.Options{PublicURL: "http://x.invalid/'; touch pwned; '", Unit: stagely.AgentUnit(),
		Files: fstest.MapFS{agentdist.BinaryName("amd64"): {Data: []byte("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	d.Register(router)
	rec := httptest.NewRecorder()
	router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/install.sh", nil))
	dir := t.TempDir()
	cmd := exec.Command("sh", "-s", "--", "--root", dir, "--token", "stg_1_x")
	cmd.Dir = dir
	cmd.Stdin = rec.Body
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "holds characters this installer does not accept") {
		t.Fatalf("install.sh with a quoted URL: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("the URL's quote ended the string and ran a command")
	}
}

// A download that does not match SHA256SUMS (a tampered mirror, proxy or disk) stops the
// installer before it touches anything.
func TestInstallScript_RefusesATamperedBinaryAndInstallsNothing(t *testing.T) {
	t.Parallel()
	arch := runtime.GOARCH
	bins := t.TempDir()
	buildAgent(t, arch, bins)
	tamper := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, "/agent/download/linux/") {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			body[len(body)/2] ^= 0xff
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body)
		})
	}
	srv, _ := serve(t, nil, bins, tamper)
	_, script := get(t, srv.URL+"/install.sh")
	root := t.TempDir()
	cmd := exec.Command("sh", "-s", "--", "--token", "stg_1_abc", "--root", root, "--start")
	cmd.Stdin = bytes.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "checksum mismatch for stagely-agent-linux-"+arch) ||
		!strings.Contains(string(out), "nothing was installed") {
		t.Fatalf("install.sh with a tampered binary: err %v, want a checksum mismatch:\n%s", err, out)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("the refused install left %v under its root", entries)
	}
}

// The arm64 agent is built and checksummed like the amd64 one, and is a real arm64 program:
// it runs under qemu-user where the machine has it.
func TestArm64Agent_IsBuiltChecksummedAndRuns(t *testing.T) {
	t.Parallel()
	bins := t.TempDir()
	path := buildAgent(t, "arm64", bins)
	srv, d := serve(t, nil, bins, nil)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if d.Checksum("arm64") != hex.EncodeToString(sum[:]) {
		t.Fatalf("Checksum(arm64) = %q, want %x", d.Checksum("arm64"), sum)
	}
	_, sums := get(t, srv.URL+"/agent/download/SHA256SUMS")
	if !strings.Contains(string(sums), hex.EncodeToString(sum[:])+"  stagely-agent-linux-arm64\n") {
		t.Errorf("SHA256SUMS lacks the arm64 line:\n%s", sums)
	}
	if code, body := get(t, srv.URL+"/agent/download/linux/arm64"); code != 200 || !bytes.Equal(body, raw) {
		t.Errorf("GET linux/arm64 = %d (%d bytes), want the %d-byte binary", code, len(body), len(raw))
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 {
		t.Fatalf("the arm64 build is %v %v, want a 64-bit AArch64 ELF", f.Class, f.Machine)
	}
	for _, f := range f.Progs {
		if f.Type == elf.PT_INTERP {
			t.Fatal("the arm64 build needs a dynamic loader: CGO was not off")
		}
	}
	qemu := ""
	for _, name := range []string{"qemu-aarch64-static", "qemu-aarch64"} {
		if p, err := exec.LookPath(name); err == nil {
			qemu = p
			break
		}
	}
	if qemu == "" {
		t.Log("neither qemu-aarch64-static nor qemu-aarch64 is installed: the arm64 agent was built and checksummed but not run (apt-get install qemu-user-static runs it)")
		return
	}
	out, err := exec.Command(qemu, path, "--version").CombinedOutput()
	if err != nil || string(out) != "stagely-agent test-arm64\n" {
		t.Fatalf("%s stagely-agent --version = %q (%v), want the stamped version", qemu, out, err)
	}
}
