package deployer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// keepReleases is how many release trees a project keeps for rollback.
const keepReleases = 5

// projectDirs are the folders of one compose project under the data directory:
//
//	projects/<p>/src                  the stable working directory compose runs in
//	projects/<p>/src.manifest         the repository files src holds, one per line
//	projects/<p>/src.sha              the SHA src holds
//	projects/<p>/releases/<sha>/      the extracted tree of each kept SHA
//	projects/<p>/releases/<sha>.manifest
//	projects/<p>/run/                 0700; the job's override, removed when the job ends
type projectDirs struct {
	root string
}

func (p projectDirs) src() string               { return filepath.Join(p.root, "src") }
func (p projectDirs) srcManifest() string       { return filepath.Join(p.root, "src.manifest") }
func (p projectDirs) srcSHA() string            { return filepath.Join(p.root, "src.sha") }
func (p projectDirs) releases() string          { return filepath.Join(p.root, "releases") }
func (p projectDirs) release(sha string) string { return filepath.Join(p.releases(), sha) }
func (p projectDirs) releaseManifest(sha string) string {
	return filepath.Join(p.releases(), sha+".manifest")
}
func (p projectDirs) run() string { return filepath.Join(p.root, "run") }

// storeRelease moves an extracted staging tree into place as the release of sha,
// replacing an older copy of the same SHA.
func (p projectDirs) storeRelease(staging, sha string, files []string) error {
	if err := os.MkdirAll(p.releases(), 0o755); err != nil {
		return fmt.Errorf("store release %s: %w", sha, err)
	}
	if err := os.RemoveAll(p.release(sha)); err != nil {
		return fmt.Errorf("store release %s: %w", sha, err)
	}
	if err := os.Rename(staging, p.release(sha)); err != nil {
		return fmt.Errorf("store release %s: %w", sha, err)
	}
	if err := writeManifest(p.releaseManifest(sha), files); err != nil {
		return fmt.Errorf("store release %s: %w", sha, err)
	}
	now := time.Now()
	_ = os.Chtimes(p.releaseManifest(sha), now, now)
	return nil
}

// hasRelease reports whether the tree of sha is kept.
func (p projectDirs) hasRelease(sha string) bool {
	_, err := readManifest(p.releaseManifest(sha))
	return err == nil
}

// syncRelease makes src hold the release of sha: every file of the release is written
// (in place, keeping inodes, so single-file bind mounts see the change), files the previous
// release had and this one lacks are removed, and everything else — data containers wrote
// through bind mounts — is left alone.
func (p projectDirs) syncRelease(sha string) error {
	files, err := readManifest(p.releaseManifest(sha))
	if err != nil {
		return fmt.Errorf("sync %s into the working directory: %w", sha, err)
	}
	prev, err := readManifest(p.srcManifest())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sync %s into the working directory: %w", sha, err)
	}
	src := p.src()
	if err := os.MkdirAll(src, 0o755); err != nil {
		return fmt.Errorf("sync %s into the working directory: %w", sha, err)
	}
	keep := make(map[string]bool, len(files))
	for _, f := range files {
		keep[f] = true
		if err := syncFile(filepath.Join(p.release(sha), filepath.FromSlash(f)), src, f); err != nil {
			return fmt.Errorf("sync %s into the working directory: %w", sha, err)
		}
	}
	for _, f := range prev {
		if keep[f] || noLinkInParents(src, f) != nil {
			continue
		}
		target := filepath.Join(src, filepath.FromSlash(f))
		if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s from the working directory: %w", f, err)
		}
		removeEmptyParents(src, f)
	}
	return writeManifest(p.srcManifest(), files)
}

func syncFile(from, root, rel string) error {
	if err := noLinkInParents(root, rel); err != nil {
		return err
	}
	to := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(from)
	if err != nil {
		return err
	}
	cur, curErr := os.Lstat(to)
	if curErr == nil && cur.IsDir() {
		return fmt.Errorf("%s is a folder in the working directory but not in the repository; move it away", rel)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(from)
		if err != nil {
			return err
		}
		if curErr == nil && cur.Mode()&os.ModeSymlink != 0 {
			if old, _ := os.Readlink(to); old == target {
				return nil
			}
		}
		if curErr == nil {
			if err := os.Remove(to); err != nil {
				return err
			}
		}
		return os.Symlink(target, to)
	}
	want, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if curErr == nil && cur.Mode()&os.ModeSymlink != 0 {
		if err := os.Remove(to); err != nil {
			return err
		}
		curErr = os.ErrNotExist
	}
	if curErr == nil && cur.Mode().Perm() == fi.Mode().Perm() && cur.Size() == int64(len(want)) {
		if have, err := os.ReadFile(to); err == nil && bytes.Equal(have, want) {
			return nil
		}
	}
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := f.Write(want); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chmod(to, fi.Mode().Perm())
}

func removeEmptyParents(root, rel string) {
	dir := filepath.Dir(filepath.Join(root, filepath.FromSlash(rel)))
	for dir != root && strings.HasPrefix(dir, root+string(filepath.Separator)) {
		if os.Remove(dir) != nil { // fails when not empty: then its parents are not empty either
			return
		}
		dir = filepath.Dir(dir)
	}
}

// pruneReleases keeps the newest keepReleases releases and every SHA in protect.
func (p projectDirs) pruneReleases(protect ...string) error {
	entries, err := os.ReadDir(p.releases())
	if err != nil {
		return fmt.Errorf("prune releases: %w", err)
	}
	type rel struct {
		sha string
		mod time.Time
	}
	var rels []rel
	for _, e := range entries {
		sha, ok := strings.CutSuffix(e.Name(), ".manifest")
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		rels = append(rels, rel{sha, info.ModTime()})
	}
	sort.Slice(rels, func(i, j int) bool { return rels[i].mod.After(rels[j].mod) })
	keep := map[string]bool{}
	for _, s := range protect {
		keep[s] = true
	}
	for i, r := range rels {
		if i < keepReleases || keep[r.sha] {
			continue
		}
		if err := os.Remove(p.releaseManifest(r.sha)); err != nil {
			return fmt.Errorf("prune release %s: %w", r.sha, err)
		}
		if err := os.RemoveAll(p.release(r.sha)); err != nil {
			return fmt.Errorf("prune release %s: %w", r.sha, err)
		}
	}
	return nil
}

func writeManifest(file string, files []string) error {
	sorted := append([]string(nil), files...)
	sort.Strings(sorted)
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(sorted, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

func readManifest(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}
