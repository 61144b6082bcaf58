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
// `..`, links that point out of the tree, device files and archives past the size limit.
func extractTarball(r io.Reader, dir string, limit int64) ([]string, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read tarball: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	x := extractor{dir: dir, limit: limit}
	entries := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read tarball: %w", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // GitHub puts the commit SHA in a pax global header.
		}
		entries++
		if entries > maxEntries {
			return nil, fmt.Errorf("%w: more than %d entries", errUnsafeTarball, maxEntries)
		}
		rest, err := x.relative(h.Name)
		if err != nil {
			return nil, err
		}
		if rest == "" {
			continue // the top-level folder itself
		}
		if err := x.extract(h, tr, rest); err != nil {
			return nil, err
		}
	}
	if x.top == "" {
		return nil, fmt.Errorf("%w: the archive is empty", errUnsafeTarball)
	}
	return x.files, nil
}

// extractor is the state of one extractTarball.
type extractor struct {
	dir   string
	limit int64
	// top is the archive's top-level folder, set by its first entry.
	top string
	// total is the bytes of content written so far.
	total int64
	// files are the relative slash paths of every file and link extracted.
	files []string
}

// relative checks an entry's name and returns its path below the top-level folder: empty
// for the folder itself.
func (x *extractor) relative(name string) (string, error) {
	if strings.ContainsAny(name, "\n\r\x00") {
		return "", fmt.Errorf("%w: entry %q has a control character in its name", errUnsafeTarball, name)
	}
	if strings.HasPrefix(name, "/") || strings.Contains(name, `\`) {
		return "", fmt.Errorf("%w: entry %q has an absolute or Windows path", errUnsafeTarball, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: entry %q uses .. to climb out of the tree", errUnsafeTarball, name)
		}
	}
	first, rest, _ := strings.Cut(strings.TrimPrefix(path.Clean(name), "./"), "/")
	if x.top == "" {
		x.top = first
	} else if first != x.top {
		return "", fmt.Errorf("%w: entry %q is outside the top-level folder %q", errUnsafeTarball, name, x.top)
	}
	if rest != "" && !filepath.IsLocal(rest) {
		return "", fmt.Errorf("%w: entry %q is not a local path", errUnsafeTarball, name)
	}
	return rest, nil
}

// extract writes the entry h, at rest below the top-level folder, with its content from tr.
func (x *extractor) extract(h *tar.Header, tr io.Reader, rest string) error {
	target := filepath.Join(x.dir, filepath.FromSlash(rest))
	if err := noLinkInParents(x.dir, rest); err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("extract %s: %w", rest, err)
		}
		return nil
	case tar.TypeReg:
		if err := x.count(h.Size); err != nil {
			return err
		}
		if err := writeEntry(target, tr, h); err != nil {
			return fmt.Errorf("extract %s: %w", rest, err)
		}
	case tar.TypeSymlink:
		if err := checkLinkTarget(rest, h.Linkname); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("extract %s: %w", rest, err)
		}
		if err := os.Symlink(h.Linkname, target); err != nil {
			return fmt.Errorf("extract %s: %w", rest, err)
		}
	case tar.TypeLink:
		if err := x.hardLink(h, rest, target); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: entry %q is a %s, not a file, folder or link", errUnsafeTarball, h.Name, typeName(h.Typeflag))
	}
	x.files = append(x.files, rest)
	return nil
}

// count adds size bytes of content to the total, refusing them past the limit.
func (x *extractor) count(size int64) error {
	x.total += size
	if size < 0 || x.total > x.limit {
		return fmt.Errorf("%w: content exceeds the %d byte limit", errUnsafeTarball, x.limit)
	}
	return nil
}

// hardLink extracts a hard link as a copy of the earlier regular file it names: the release
// tree must not share inodes with the working directory.
func (x *extractor) hardLink(h *tar.Header, rest, target string) error {
	// A hard link names another entry of the archive, top folder included.
	lfirst, lrest, _ := strings.Cut(path.Clean(h.Linkname), "/")
	if lfirst != x.top || lrest == "" || !filepath.IsLocal(lrest) {
		return fmt.Errorf("%w: hard link %q points out of the tree to %q", errUnsafeTarball, h.Name, h.Linkname)
	}
	if err := noLinkInParents(x.dir, lrest); err != nil {
		return err
	}
	src := filepath.Join(x.dir, filepath.FromSlash(lrest))
	fi, err := os.Lstat(src)
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: hard link %q to %q, which is not an earlier regular file", errUnsafeTarball, h.Name, h.Linkname)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("extract %s: %w", rest, err)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("extract %s: %w", rest, err)
	}
	defer in.Close()
	if err := x.count(fi.Size()); err != nil {
		return err
	}
	if err := writeEntry(target, in, &tar.Header{Mode: int64(fi.Mode().Perm()), Size: fi.Size()}); err != nil {
		return fmt.Errorf("extract %s: %w", rest, err)
	}
	return nil
}

func writeEntry(target string, r io.Reader, h *tar.Header) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if h.Mode&0o111 != 0 {
		mode = 0o755
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, r, h.Size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkLinkTarget refuses a symlink at rel whose target, resolved from the link's folder,
// leaves the tree or is absolute.
func checkLinkTarget(rel, target string) error {
	if target == "" || path.IsAbs(target) || strings.Contains(target, `\`) {
		return fmt.Errorf("%w: symlink %q points to %q, outside the tree", errUnsafeTarball, rel, target)
	}
	resolved := path.Join(path.Dir(rel), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("%w: symlink %q points to %q, outside the tree", errUnsafeTarball, rel, target)
	}
	return nil
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
			return fmt.Errorf("%w: entry %q goes through the symlink %q", errUnsafeTarball, rel, strings.TrimPrefix(cur, root+string(filepath.Separator)))
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
