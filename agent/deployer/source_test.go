package deployer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type entry struct {
	hdr  tar.Header
	body string
}

// tarball builds a gzip tar of the entries, as GitHub serves one.
func tarball(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if _, err := gz.Write(rawTar(t, entries...)); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawTar builds an uncompressed tar of the entries.
func rawTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func file(name, body string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name}, body: body}
}

func link(typ byte, name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: target}}
}

func TestExtractTarball_StripsTheTopFolderAndKeepsLinksInside(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tb := tarball(t,
		entry{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "abc"}}},
		entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "acme-shop-abc1234/", Mode: 0o755}},
		file("acme-shop-abc1234/compose.yaml", "services: {}\n"),
		entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "acme-shop-abc1234/bin/run.sh", Mode: 0o755}, body: "#!/bin/sh\n"},
		link(tar.TypeSymlink, "acme-shop-abc1234/current", "bin/run.sh"),
		link(tar.TypeSymlink, "acme-shop-abc1234/bin/up", "../compose.yaml"),
		link(tar.TypeLink, "acme-shop-abc1234/copy.yaml", "acme-shop-abc1234/compose.yaml"),
	)
	files, err := extractTarball(bytes.NewReader(tb), dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(files, ","); got != "compose.yaml,bin/run.sh,current,bin/up,copy.yaml" {
		t.Errorf("files = %s", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "copy.yaml")); string(b) != "services: {}\n" {
		t.Errorf("hard link copy = %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "bin/run.sh")); fi.Mode().Perm() != 0o755 {
		t.Errorf("run.sh mode = %v", fi.Mode())
	}
}

func TestExtractTarball_RefusesUnsafeArchives(t *testing.T) {
	t.Parallel()
	top := "acme-shop-abc1234/"
	tests := []struct {
		name    string
		entries []entry
		limit   int64
		want    string
	}{
		{"dot-dot path", []entry{file(top+"../../etc/cron.d/x", "boom")}, 1 << 20, "climb out"},
		{"absolute path", []entry{file("/etc/passwd", "boom")}, 1 << 20, "absolute"},
		{"symlink out of the tree", []entry{file(top+"a", "x"), link(tar.TypeSymlink, top+"evil", "../../../etc")}, 1 << 20, "outside the tree"},
		{"absolute symlink", []entry{link(tar.TypeSymlink, top+"evil", "/etc/shadow")}, 1 << 20, "outside the tree"},
		{"hard link out of the tree", []entry{file(top+"a", "x"), link(tar.TypeLink, top+"evil", "/etc/shadow")}, 1 << 20, "hard link"},
		{"write through a symlinked folder", []entry{link(tar.TypeSymlink, top+"d", "."), file(top+"d/x", "boom")}, 1 << 20, "goes through the symlink"},
		{"device file", []entry{{hdr: tar.Header{Typeflag: tar.TypeChar, Name: top + "null", Devmajor: 1, Devminor: 3}}}, 1 << 20, "character device"},
		{"fifo", []entry{{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: top + "pipe"}}}, 1 << 20, "named pipe"},
		{"past the size limit", []entry{file(top+"big", strings.Repeat("a", 4096))}, 1000, "limit"},
		{"two top-level folders", []entry{file(top+"a", "x"), file("other/b", "y")}, 1 << 20, "outside the top-level folder"},
		{"newline in a name", []entry{file(top+"a\nb", "x")}, 1 << 20, "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			_, err := extractTarball(bytes.NewReader(tarball(t, tt.entries...)), dir, tt.limit)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if _, statErr := os.Stat("/etc/cron.d/x"); statErr == nil {
				t.Fatal("wrote outside the tree")
			}
		})
	}
}

func TestFetchTarball_FollowsTheRedirectWithoutForwardingTheToken(t *testing.T) {
	t.Parallel()
	tb := tarball(t, file("acme-shop-abc1234/README.md", "hi\n"))
	var downloadAuth []string
	download := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		downloadAuth = append(downloadAuth, r.Header.Get("Authorization"))
		_, _ = w.Write(tb)
	}))
	defer download.Close()
	var apiAuth string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiAuth = r.Header.Get("Authorization")
		// Another host, as codeload.github.com is to api.github.com.
		http.Redirect(w, r, strings.Replace(download.URL, "127.0.0.1", "localhost", 1)+"/x.tar.gz", http.StatusFound)
	}))
	defer api.Close()

	files, err := fetchTarball(context.Background(), &http.Client{}, api.URL+"/repos/acme/shop/tarball/abc", "ghs_secret", t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || apiAuth != "Bearer ghs_secret" {
		t.Errorf("files = %v, api saw %q", files, apiAuth)
	}
	if len(downloadAuth) != 1 || downloadAuth[0] != "" {
		t.Errorf("download host saw Authorization %q, want none", downloadAuth)
	}
}

func TestFetchTarball_ErrorStatusIsReported(t *testing.T) {
	t.Parallel()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gone", http.StatusNotFound)
	}))
	defer api.Close()
	_, err := fetchTarball(context.Background(), &http.Client{}, api.URL, "t", t.TempDir(), 1<<20)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v", err)
	}
	if errors.Is(err, errUnsafeTarball) {
		t.Error("a 404 is not an unsafe tarball")
	}
}

func TestFetchTarball_TransportErrorCarriesNoDownloadToken(t *testing.T) {
	t.Parallel()
	// GitHub redirects to a download URL with a token in its query; a failure to reach it
	// must not put that URL into the result, which reaches logs and the check run.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, deadURL+"/acme/web/legacy.tar.gz/abc?token=SUPERSECRETDOWNLOADTOKEN", http.StatusFound)
	}))
	defer api.Close()
	_, err := fetchTarball(context.Background(), api.Client(), api.URL+"/repos/acme/web/tarball/abc", "ghs_apitoken", t.TempDir(), 1<<20)
	if err == nil {
		t.Fatal("fetching from a dead host succeeded")
	}
	if strings.Contains(err.Error(), "SUPERSECRETDOWNLOADTOKEN") || strings.Contains(err.Error(), "ghs_apitoken") {
		t.Fatalf("error carries a token: %v", err)
	}
	if !strings.Contains(err.Error(), strings.TrimPrefix(deadURL, "http://")) {
		t.Fatalf("error does not name the host it could not reach: %v", err)
	}
}
