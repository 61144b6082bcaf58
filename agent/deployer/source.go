package deployer

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Limits of one repository tarball, besides Options.MaxTarballBytes.
const (
	maxEntries = 100_000
)

// errUnsafeTarball marks a tarball refused for its content, not for a transport problem.
var errUnsafeTarball = errors.New("unsafe tarball")

// fetchTarball downloads the tarball and extracts it into dir, which must exist and be empty.
// It returns the relative slash paths of every file and link extracted.
//
// GitHub answers the tarball URL with a 302 to a short-lived URL on another host. Go's
// client follows it and drops the Authorization header because the host differs, so the
// token never reaches the download host.
func fetchTarball(ctx context.Context, client *http.Client, url, token, dir string, limit int64) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch tarball: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch tarball: %w", withoutURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch tarball: %s answered %s", resp.Request.URL.Host, resp.Status)
	}
	// The compressed stream is bounded too, so a server cannot feed us forever.
	body := &limitedReader{r: resp.Body, n: limit, max: limit}
	return extractTarball(body, dir, limit)
}

type limitedReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("%w: download exceeds the %d byte limit", errUnsafeTarball, l.max)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// extractTarball extracts a gzip tar whose entries all sit under one top-level folder
// (GitHub's owner-repo-sha/) into dir, stripping that folder. It refuses absolute paths,
// `..`, links that lead out of the tree (through other links too), entries that replace
// or write through earlier ones, device files and archives past the size limit. Every write
// goes through an os.Root, so even a mistake in these checks cannot write outside dir, and
// symlinks are created last, once every one of them is known to stay inside: until then no
// entry can be written through one, and no link that leads out is ever on disk.
func extractTarball(r io.Reader, dir string, limit int64) ([]string, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read tarball: %w", err)
	}
	defer gz.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open the extraction directory: %w", err)
	}
	defer root.Close()
	x := &extractor{root: root, limit: limit, links: newLinkSet()}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read tarball: %w", err)
		}
		if err := x.extract(h, tr); err != nil {
			return nil, err
		}
	}
	if x.top == "" {
		return nil, fmt.Errorf("%w: the archive is empty", errUnsafeTarball)
	}
	if err := x.links.checkAll(); err != nil {
		return nil, err
	}
	for _, name := range x.links.order {
		if err := root.Symlink(x.links.targets[name], name); err != nil {
			return nil, fmt.Errorf("extract %q: %w", clip(name), err)
		}
	}
	return x.files, nil
}

// extractor holds the state of one extraction.
type extractor struct {
	root    *os.Root
	limit   int64
	top     string // the top-level folder every entry sits under
	total   int64  // bytes of content written
	entries int
	files   []string // slash paths of the files and links extracted
	links   *linkSet
}

func (x *extractor) extract(h *tar.Header, r io.Reader) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil // GitHub puts the commit SHA in a pax global header.
	}
	x.entries++
	if x.entries > maxEntries {
		return fmt.Errorf("%w: more than %d entries", errUnsafeTarball, maxEntries)
	}
	rest, err := x.localName(h.Name)
	if err != nil || rest == "" {
		return err // rest is empty for the top-level folder itself
	}
	if via := x.linkInParents(rest); via != "" {
		return fmt.Errorf("%w: entry %q goes through the symlink %q", errUnsafeTarball, clip(rest), clip(via))
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return x.mkdir(rest)
	case tar.TypeReg:
		if err := x.unused(rest); err != nil {
			return err
		}
		if err := x.count(h.Size); err != nil {
			return err
		}
		if err := x.writeFile(rest, r, h.Size, h.Mode); err != nil {
			return fmt.Errorf("extract %q: %w", clip(rest), err)
		}
	case tar.TypeSymlink:
		if err := x.symlink(rest, h.Linkname); err != nil {
			return err
		}
	case tar.TypeLink:
		if err := x.hardLink(rest, h.Linkname); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: entry %q is a %s, not a file, folder or link", errUnsafeTarball, clip(h.Name), typeName(h.Typeflag))
	}
	x.files = append(x.files, rest)
	return nil
}

// localName checks an entry's name and returns its slash path below the top-level folder.
func (x *extractor) localName(name string) (string, error) {
	if strings.ContainsAny(name, "\n\r\x00") {
		return "", fmt.Errorf("%w: entry %q has a control character in its name", errUnsafeTarball, clip(name))
	}
	if strings.HasPrefix(name, "/") || strings.Contains(name, `\`) {
		return "", fmt.Errorf("%w: entry %q has an absolute or Windows path", errUnsafeTarball, clip(name))
	}
	if hasDotDot(name) {
		return "", fmt.Errorf("%w: entry %q uses .. to climb out of the tree", errUnsafeTarball, clip(name))
	}
	first, rest, _ := strings.Cut(strings.TrimPrefix(path.Clean(name), "./"), "/")
	if x.top == "" {
		x.top = first
	} else if first != x.top {
		return "", fmt.Errorf("%w: entry %q is outside the top-level folder %q", errUnsafeTarball, clip(name), clip(x.top))
	}
	if rest != "" && !filepath.IsLocal(rest) {
		return "", fmt.Errorf("%w: entry %q is not a local path", errUnsafeTarball, clip(name))
	}
	return rest, nil
}

func hasDotDot(name string) bool {
	for part := range strings.SplitSeq(name, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// unused refuses an entry whose path an earlier entry already took: replacing a folder by
// a link, or a link by a folder or file, would change where earlier or later entries lead.
func (x *extractor) unused(rest string) error {
	if _, ok := x.links.targets[rest]; ok {
		return fmt.Errorf("%w: entry %q is already in the archive as a symlink", errUnsafeTarball, clip(rest))
	}
	fi, err := x.root.Lstat(rest)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("extract %q: %w", clip(rest), err)
	}
	kind := "file"
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		kind = "symlink"
	case fi.IsDir():
		kind = "folder"
	}
	return fmt.Errorf("%w: entry %q is already in the archive as a %s", errUnsafeTarball, clip(rest), kind)
}

func (x *extractor) count(size int64) error {
	x.total += size
	if size < 0 || x.total > x.limit {
		return fmt.Errorf("%w: content exceeds the %d byte limit", errUnsafeTarball, x.limit)
	}
	return nil
}

// mkdir creates a folder; one that already exists as a folder (named twice, or made for
// an earlier file) is fine.
func (x *extractor) mkdir(rest string) error {
	if fi, err := x.root.Lstat(rest); err == nil && fi.IsDir() {
		return nil
	}
	if err := x.unused(rest); err != nil {
		return err
	}
	if err := x.root.MkdirAll(rest, 0o755); err != nil {
		return fmt.Errorf("extract %q: %w", clip(rest), err)
	}
	return nil
}

func (x *extractor) writeFile(rest string, r io.Reader, size, mode int64) error {
	if err := x.root.MkdirAll(path.Dir(rest), 0o755); err != nil {
		return err
	}
	perm := os.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	f, err := x.root.OpenFile(rest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, r, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// symlink records a link after following its target through the links recorded so far;
// extractTarball checks it again once every link is known, then creates it.
func (x *extractor) symlink(rest, target string) error {
	if err := x.unused(rest); err != nil {
		return err
	}
	if target == "" || strings.Contains(target, `\`) || strings.ContainsAny(target, "\x00") {
		return fmt.Errorf("%w: symlink %q points to %q, outside the tree", errUnsafeTarball, clip(rest), clip(target))
	}
	if len(target) > maxLinkTarget {
		return fmt.Errorf("%w: symlink %q has a target longer than %d bytes", errUnsafeTarball, clip(rest), maxLinkTarget)
	}
	if err := x.links.add(rest, target); err != nil {
		return err
	}
	if err := x.root.MkdirAll(path.Dir(rest), 0o755); err != nil {
		return fmt.Errorf("extract %q: %w", clip(rest), err)
	}
	return nil
}

// hardLink copies an earlier regular file of the archive: a copy, not a link, because the
// release tree must not share inodes with the working directory.
func (x *extractor) hardLink(rest, linkname string) error {
	if err := x.unused(rest); err != nil {
		return err
	}
	if hasDotDot(linkname) {
		return fmt.Errorf("%w: hard link %q to %q uses .. to climb out of the tree", errUnsafeTarball, clip(rest), clip(linkname))
	}
	// A hard link names another entry of the archive, top folder included.
	lfirst, lrest, _ := strings.Cut(path.Clean(linkname), "/")
	if lfirst != x.top || lrest == "" || !filepath.IsLocal(lrest) || strings.Contains(linkname, `\`) {
		return fmt.Errorf("%w: hard link %q points out of the tree to %q", errUnsafeTarball, clip(rest), clip(linkname))
	}
	if via := x.linkInParents(lrest); via != "" {
		return fmt.Errorf("%w: hard link %q to %q goes through the symlink %q", errUnsafeTarball, clip(rest), clip(linkname), clip(via))
	}
	_, isLink := x.links.targets[lrest]
	fi, err := x.root.Lstat(lrest)
	if isLink || err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: hard link %q to %q, which is not an earlier regular file", errUnsafeTarball, clip(rest), clip(linkname))
	}
	if err := x.count(fi.Size()); err != nil {
		return err
	}
	in, err := x.root.Open(lrest)
	if err != nil {
		return fmt.Errorf("extract %q: %w", clip(rest), err)
	}
	defer in.Close()
	if err := x.writeFile(rest, in, fi.Size(), int64(fi.Mode().Perm())); err != nil {
		return fmt.Errorf("extract %q: %w", clip(rest), err)
	}
	return nil
}

// linkInParents returns the first folder on the way to rest that is a symlink of the
// archive, or "". The links are not on disk yet, so the set is the whole truth.
func (x *extractor) linkInParents(rest string) string {
	for i := range len(rest) {
		if rest[i] != '/' {
			continue
		}
		if _, ok := x.links.targets[rest[:i]]; ok {
			return rest[:i]
		}
	}
	return ""
}

// noLinkInParents refuses writing through a symlinked folder, which could lead anywhere.
func noLinkInParents(root, rel string) error {
	parts := strings.Split(rel, "/")
	cur := root
	for _, p := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, p)
		fi, err := os.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("check %s: %w", rel, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%w: entry %q goes through the symlink %q", errUnsafeTarball, clip(rel), clip(strings.TrimPrefix(cur, root+string(filepath.Separator))))
		}
	}
	return nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "named pipe"
	default:
		return fmt.Sprintf("tar entry of type %q", t)
	}
}

// withoutURL drops the URL from a transport error: the download URL GitHub redirects to
// carries a short-lived token in its query, and errors end up in results, logs and GitHub.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		host := "the download host"
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			host = u.Host
		}
		return fmt.Errorf("%s %s: %w", ue.Op, host, ue.Err)
	}
	return err
}
