package deployer

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sandbox is a tree to extract into with a sentinel folder beside it, so a test can tell
// whether anything reached outside the tree.
type sandbox struct {
	parent string // holds tree and sentinel, nothing else
	tree   string
}

const sentinelContent = "the agent's own file\n"

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	parent := t.TempDir()
	s := sandbox{parent: parent, tree: filepath.Join(parent, "tree")}
	if err := os.Mkdir(s.tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(parent, "sentinel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "sentinel", "secret"), []byte(sentinelContent), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkNothingOutside fails the test if anything beside the tree changed, or if a symlink
// inside the tree leads out of it. It judges links with os.Root and filepath.EvalSymlinks,
// not with the code under test.
func (s sandbox) checkNothingOutside(t testing.TB) {
	t.Helper()
	names, err := os.ReadDir(s.parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0].Name() != "sentinel" || names[1].Name() != "tree" {
		t.Errorf("the folder around the tree now holds %v", names)
	}
	inside, err := os.ReadDir(filepath.Join(s.parent, "sentinel"))
	if err != nil || len(inside) != 1 || inside[0].Name() != "secret" {
		t.Errorf("the sentinel folder now holds %v (%v)", inside, err)
	}
	if b, err := os.ReadFile(filepath.Join(s.parent, "sentinel", "secret")); err != nil || string(b) != sentinelContent {
		t.Errorf("the sentinel file now holds %q (%v)", b, err)
	}
	if escaped := linksLeavingTree(t, s.tree); len(escaped) > 0 {
		t.Errorf("symlinks lead out of the tree: %s", strings.Join(escaped, "; "))
	}
}

// linksLeavingTree lists the symlinks under tree that resolve outside it.
func linksLeavingTree(t testing.TB, tree string) []string {
	t.Helper()
	root, err := os.OpenRoot(tree)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var escaped []string
	err = filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		// os.Root refuses to follow a link out of the root; a dangling link inside is fine.
		if _, err := root.Stat(rel); err != nil && strings.Contains(err.Error(), "escapes") {
			escaped = append(escaped, fmt.Sprintf("%s (%v)", rel, err))
			return nil
		}
		if real, err := filepath.EvalSymlinks(p); err == nil && real != tree && !strings.HasPrefix(real, tree+string(filepath.Separator)) {
			escaped = append(escaped, rel+" resolves to "+real)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return escaped
}

func dir(name string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

// chain returns n symlinks top/l0 .. top/l<n-1>, each pointing at the one before, l0 at top/f.
func chain(top string, n int) []entry {
	es := []entry{file(top+"f", "end of the chain\n"), link(tar.TypeSymlink, top+"l0", "f")}
	for i := 1; i < n; i++ {
		es = append(es, link(tar.TypeSymlink, fmt.Sprintf("%sl%d", top, i), fmt.Sprintf("l%d", i-1)))
	}
	return es
}

// linkAttack is an archive that tries to reach outside the tree, and the refusal it gets.
type linkAttack struct {
	name    string
	entries []entry
	entry   string // the entry the error must name
	want    string
}

// linkAttacks are what a repository can put in its tarball to make the agent write or
// point outside the folder it extracts into. Each is refused with an error that names the
// entry, and nothing outside the tree changes. The link chains reproduce the escape of
// issue 15: checked one at a time, without following the other links, each target looks
// inside the tree.
func linkAttacks(top string) []linkAttack {
	return []linkAttack{
		{
			name: "link through a link to the parent of the tree",
			entries: []entry{
				link(tar.TypeSymlink, top+"a/b/l1", "../.."),
				link(tar.TypeSymlink, top+"c/l2", "../a/b/l1/.."),
			},
			entry: "c/l2", want: "outside the tree",
		},
		{
			name: "link through a link extracted after it",
			entries: []entry{
				link(tar.TypeSymlink, top+"c/l2", "../a/b/l1/.."),
				link(tar.TypeSymlink, top+"a/b/l1", "../.."),
			},
			entry: "c/l2", want: "outside the tree",
		},
		{
			name: "link through a link to a folder beside the tree",
			entries: []entry{
				link(tar.TypeSymlink, top+"x/l1", ".."),
				link(tar.TypeSymlink, top+"y/l2", "../x/l1/../sentinel"),
			},
			entry: "y/l2", want: "outside the tree",
		},
		{
			name: "three links deep",
			entries: []entry{
				link(tar.TypeSymlink, top+"p/q/r/l1", "../../.."),
				link(tar.TypeSymlink, top+"s/l2", "../p/q/r/l1"),
				link(tar.TypeSymlink, top+"t/l3", "../s/l2/.."),
			},
			entry: "t/l3", want: "outside the tree",
		},
		{
			name: "file written through a link chain",
			entries: []entry{
				link(tar.TypeSymlink, top+"a/b/l1", "../.."),
				link(tar.TypeSymlink, top+"c/l2", "../a/b/l1/.."),
				file(top+"c/l2/sentinel/pwned", "boom"),
			},
			entry: "c/l2", want: "outside the tree",
		},
		{
			name: "file written through a link that stays inside",
			entries: []entry{
				link(tar.TypeSymlink, top+"a/b/l1", "../.."),
				file(top+"a/b/l1/x", "boom"),
			},
			entry: "a/b/l1/x", want: "goes through the symlink",
		},
		{
			name:    "absolute link then a file under it",
			entries: []entry{link(tar.TypeSymlink, top+"d", "/etc"), file(top+"d/passwd", "boom")},
			entry:   "d", want: "outside the tree",
		},
		{
			name:    "folder replaced by a link",
			entries: []entry{dir(top + "d/"), file(top+"sub/x", "x"), link(tar.TypeSymlink, top+"d", "sub")},
			entry:   "d", want: "already in the archive",
		},
		{
			name:    "folder made by a file replaced by a link",
			entries: []entry{file(top+"d/x", "x"), link(tar.TypeSymlink, top+"d", "sub")},
			entry:   "d", want: "already in the archive",
		},
		{
			name:    "link replaced by a folder",
			entries: []entry{dir(top + "sub/"), link(tar.TypeSymlink, top+"d", "sub"), dir(top + "d/")},
			entry:   "d", want: "already in the archive",
		},
		{
			name:    "link replaced by a file",
			entries: []entry{link(tar.TypeSymlink, top+"f", "sub/x"), file(top+"f", "boom")},
			entry:   "f", want: "already in the archive",
		},
		{
			name:    "hard link to an absolute path",
			entries: []entry{file(top+"a", "x"), link(tar.TypeLink, top+"h", "/etc/passwd")},
			entry:   "h", want: "hard link",
		},
		{
			name:    "hard link climbing out with ..",
			entries: []entry{file(top+"a", "x"), link(tar.TypeLink, top+"h", top+"../../sentinel/secret")},
			entry:   "h", want: "hard link",
		},
		{
			name:    "hard link with .. that comes back in",
			entries: []entry{file(top+"a", "x"), link(tar.TypeLink, top+"h", top+"../"+top+"a")},
			entry:   "h", want: "..",
		},
		{
			name: "hard link through a link chain to a file outside",
			entries: []entry{
				link(tar.TypeSymlink, top+"a/b/l1", "../.."),
				link(tar.TypeSymlink, top+"c/l2", "../a/b/l1/.."),
				link(tar.TypeLink, top+"h", top+"c/l2/sentinel/secret"),
			},
			entry: "c/l2", want: "outside the tree",
		},
		{
			name:    "hard link through a link inside",
			entries: []entry{file(top+"sub/f", "x"), link(tar.TypeSymlink, top+"d", "sub"), link(tar.TypeLink, top+"h", top+"d/f")},
			entry:   "h", want: "goes through the symlink",
		},
		{
			name:    "hard link to a symlink",
			entries: []entry{file(top+"f", "x"), link(tar.TypeSymlink, top+"l", "f"), link(tar.TypeLink, top+"h", top+"l")},
			entry:   "h", want: "not an earlier regular file",
		},
		{
			name:    "chain of 41 links",
			entries: chain(top, 41),
			entry:   "l40", want: "more than 40 symlinks",
		},
		{
			name:    "two links pointing at each other",
			entries: []entry{link(tar.TypeSymlink, top+"a", "b"), link(tar.TypeSymlink, top+"b", "a")},
			entry:   "b", want: "more than 40 symlinks",
		},
		{
			name:    "link target longer than a path can be",
			entries: []entry{link(tar.TypeSymlink, top+"l", strings.Repeat("a/", 2049))},
			entry:   "l", want: "longer than",
		},
	}
}

func TestExtractTarball_RefusesLinkAttacksAndWritesNothingOutside(t *testing.T) {
	t.Parallel()
	top := "acme-shop-abc1234/"
	for _, tt := range linkAttacks(top) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			_, err := extractTarball(bytes.NewReader(tarball(t, tt.entries...)), s.tree, 1<<20)
			s.checkNothingOutside(t)
			if err == nil {
				t.Fatalf("extracted, want an error containing %q", tt.want)
			}
			if !errors.Is(err, errUnsafeTarball) || !strings.Contains(err.Error(), tt.want) || !namesEntry(err, top, tt.entry) {
				t.Fatalf("err = %v, want an unsafe-tarball error naming %q and containing %q", err, tt.entry, tt.want)
			}
		})
	}
}

func TestExtractTarball_KeepsLinkChainsThatStayInside(t *testing.T) {
	t.Parallel()
	top := "acme-shop-abc1234/"
	s := newSandbox(t)
	entries := append(chain(top, 40),
		link(tar.TypeSymlink, top+"a/b/l1", "../.."),
		link(tar.TypeSymlink, top+"c/l2", "../a/b/l1/f"),
		link(tar.TypeSymlink, top+"c/l3", "../a/b/l1/a/b/l1/c/l2"),
		link(tar.TypeSymlink, top+"dangling", "not/there/yet/.."),
	)
	files, err := extractTarball(bytes.NewReader(tarball(t, entries...)), s.tree, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	s.checkNothingOutside(t)
	if len(files) != len(entries) {
		t.Errorf("extracted %d entries, want %d", len(files), len(entries))
	}
	for _, l := range []string{"l39", "c/l2", "c/l3"} {
		if b, err := os.ReadFile(filepath.Join(s.tree, l)); err != nil || string(b) != "end of the chain\n" {
			t.Errorf("reading %s gives %q (%v), want the end of the chain", l, b, err)
		}
	}
}

// namesEntry reports whether err quotes the entry, by its path in the tree or in the archive.
func namesEntry(err error, top, entry string) bool {
	return strings.Contains(err.Error(), `"`+entry+`"`) || strings.Contains(err.Error(), `"`+top+entry+`"`)
}

// BenchmarkLinkSet_WorstCase measures the most CPU an archive can make the link checks
// spend: links whose targets are as long as allowed and all walked, until the per-archive
// budget refuses the archive.
func BenchmarkLinkSet_WorstCase(b *testing.B) {
	target := strings.Repeat("a/", maxLinkTarget/2)
	for b.Loop() {
		s := newLinkSet()
		var err error
		for i := 0; err == nil; i++ {
			err = s.add(fmt.Sprintf("l%d", i), target)
		}
		if !strings.Contains(err.Error(), "path components to resolve") {
			b.Fatal(err)
		}
	}
}

// BenchmarkLinkSet_Repository measures the checks for a repository with 10 000 links, each
// through two others, as a monorepo of node_modules/.bin links might have.
func BenchmarkLinkSet_Repository(b *testing.B) {
	for b.Loop() {
		s := newLinkSet()
		for i := range 10_000 {
			name := fmt.Sprintf("pkg%d/node_modules/.bin/tool", i)
			target := "../../../shared/current/bin/tool"
			if err := s.add(name, target); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.add("shared/current", "../releases/v2"); err != nil {
			b.Fatal(err)
		}
		if err := s.add("releases/v2/bin", "../../tools/bin"); err != nil {
			b.Fatal(err)
		}
		if err := s.checkAll(); err != nil {
			b.Fatal(err)
		}
	}
}
