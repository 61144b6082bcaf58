package deployer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fuzzLimit keeps FuzzExtract's trees small; the size check is the same at any limit.
const fuzzLimit = 64 << 10

const fuzzTop = "acme-shop-abc1234/"

// FuzzExtract feeds extractTarball hostile archives in two forms. A script describes the
// entries, one per line, and is built into a valid tar, so mutations change names, link
// targets, types and order rather than break header checksums; raw bytes reach the tar and
// gzip readers themselves (gzipped by the target unless they already are). The seeds hold
// every link attack of linkAttacks. Whatever the input: no panic, nothing written or linked
// outside the tree, content within the limit, and every path reported extracted is in the
// tree as a file or a link.
func FuzzExtract(f *testing.F) {
	good := []entry{
		entry{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "abc"}}},
		dir(fuzzTop),
		file(fuzzTop+"compose.yaml", "services: {}\n"),
		entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: fuzzTop + "bin/run.sh", Mode: 0o755}, body: "#!/bin/sh\n"},
		link(tar.TypeSymlink, fuzzTop+"current", "bin/run.sh"),
		link(tar.TypeSymlink, fuzzTop+"bin/up", "../compose.yaml"),
		link(tar.TypeLink, fuzzTop+"copy.yaml", fuzzTop+"compose.yaml"),
	}
	seeds := [][]entry{good, chain(fuzzTop, 5), {file(fuzzTop+"big", strings.Repeat("a", fuzzLimit+1))}}
	for _, a := range linkAttacks(fuzzTop) {
		seeds = append(seeds, a.entries)
	}
	for _, es := range seeds {
		f.Add(script(es), []byte(nil))
	}
	f.Add("p pipe\nc null\nF big 70000\nd a\nd a\nl a/b ../../x", []byte(nil))
	// Near misses: one mutation away from an escape through a link chain.
	f.Add("l a/b/l1 ../..\nl c/l2 ../a/b/l0/..\n", []byte(nil))
	f.Add("l x/l1 ..\nf x/l0/f sentinel\nl y/l2 ../x/l0/../f\n", []byte(nil))
	f.Add("", rawTar(f, good...))
	f.Add("", rawTar(f, entry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: fuzzTop + "pipe"}}))
	f.Add("", tarball(f, file(fuzzTop+"a", "x"), link(tar.TypeSymlink, fuzzTop+"l", "a")))
	f.Add("", []byte{})
	// One sandbox per process, emptied before each input: a fresh temporary folder per
	// input would cost more than the extraction.
	s := newSandbox(f)
	f.Fuzz(func(t *testing.T, script string, raw []byte) {
		archive, ok := build(script, raw)
		if !ok {
			return
		}
		if err := os.RemoveAll(s.tree); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(s.tree, 0o755); err != nil {
			t.Fatal(err)
		}
		files, err := extractTarball(bytes.NewReader(archive), s.tree, fuzzLimit)
		s.checkNothingOutside(t)
		if err != nil {
			return
		}
		checkExtracted(t, s.tree, files)
	})
}

// checkExtracted asserts the content stays within the limit and every reported path exists.
func checkExtracted(t *testing.T, tree string, files []string) {
	t.Helper()
	var total int64
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			total += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if total > fuzzLimit {
		t.Fatalf("extracted %d bytes, over the %d byte limit", total, fuzzLimit)
	}
	for _, name := range files {
		fi, err := os.Lstat(filepath.Join(tree, filepath.FromSlash(name)))
		if err != nil || !(fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0) {
			t.Fatalf("reported %q as extracted, but the tree holds %v (%v)", name, fi, err)
		}
	}
}

// script writes entries in the form build reads: one line per entry, "<type> <name>
// [<target or body>]", names relative to fuzzTop.
func script(entries []entry) string {
	var b strings.Builder
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name := strings.TrimPrefix(h.Name, fuzzTop)
		switch h.Typeflag {
		case tar.TypeReg:
			b.WriteString("f " + name + " " + e.body)
		case tar.TypeDir:
			b.WriteString("d " + name)
		case tar.TypeSymlink:
			b.WriteString("l " + name + " " + h.Linkname)
		case tar.TypeLink:
			b.WriteString("h " + name + " " + strings.TrimPrefix(h.Linkname, fuzzTop))
		default:
			b.WriteString(string(h.Typeflag) + " " + name)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// build makes the archive to extract: from the script if there is one, else from raw.
// Names and hard link targets are put under fuzzTop unless they start with "/".
func build(script string, raw []byte) ([]byte, bool) {
	if script == "" {
		if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
			return raw, true
		}
		return gzipped(raw)
	}
	under := func(name string) string {
		if strings.HasPrefix(name, "/") {
			return name
		}
		return fuzzTop + name
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for line := range strings.Lines(script) {
		typ, rest, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		name, arg, _ := strings.Cut(rest, " ")
		if len(typ) != 1 {
			return nil, false
		}
		h := tar.Header{Typeflag: typ[0], Name: under(name), Mode: 0o644}
		body := ""
		switch typ[0] {
		case 'f':
			h.Typeflag, body = tar.TypeReg, arg
		case 'F': // a file of arg bytes, to reach the size limit with a short script
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 || n > 4*fuzzLimit {
				return nil, false
			}
			h.Typeflag, body = tar.TypeReg, strings.Repeat("a", n)
		case 'd':
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case 'l':
			h.Typeflag, h.Linkname = tar.TypeSymlink, arg
		case 'h':
			h.Typeflag, h.Linkname = tar.TypeLink, under(arg)
		}
		h.Size = int64(len(body))
		if tw.WriteHeader(&h) != nil {
			return nil, false
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			return nil, false
		}
	}
	if tw.Close() != nil {
		return nil, false
	}
	return gzipped(buf.Bytes())
}

// gzipped wraps data in gzip without compressing it, which is cheap enough to do per input.
func gzipped(data []byte) ([]byte, bool) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	if err != nil {
		return nil, false
	}
	if _, err := gz.Write(data); err != nil {
		return nil, false
	}
	if err := gz.Close(); err != nil {
		return nil, false
	}
	return buf.Bytes(), true
}
