package github

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// MaxFileBytes bounds ReadFile. stagely.yaml and compose files are a few KB; GitHub serves up to
// 100 MB through the raw media type, far more than we will hold in memory for a config file.
const MaxFileBytes = 10 << 20

// rawMediaType asks the contents API for the file's bytes rather than base64 JSON, which works for
// every size up to 100 MB (JSON carries no content above 1 MB: "encoding": "none").
const rawMediaType = "application/vnd.github.raw+json"

// ReadFile returns a file's content at ref (a commit sha, branch or tag). A missing file, ref or
// repository, or a path naming a directory, is an error matching ErrNotFound.
func (in *Installation) ReadFile(ctx context.Context, repo, filePath, ref string) ([]byte, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	clean, err := cleanRepoPath(filePath)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filePath, err)
	}
	u := fmt.Sprintf("repos/%s/%s/contents/%s", url.PathEscape(owner), url.PathEscape(name), escapePath(clean))
	if ref != "" {
		u += "?ref=" + url.QueryEscape(ref)
	}
	at := ref
	if at == "" {
		at = "the default branch"
	}
	_, client, err := in.clients(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s in %s: %w", clean, at, repo, err)
	}
	req, err := client.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", clean, at, err)
	}
	req.Header.Set("Accept", rawMediaType)
	buf := &cappedBuffer{limit: MaxFileBytes}
	resp, err := client.Do(ctx, req, buf)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s in %s: %w", clean, at, repo, apiError(err))
	}
	// A directory has no raw form: GitHub answers with its JSON listing instead.
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" && bytes.HasPrefix(bytes.TrimSpace(buf.Bytes()), []byte("[")) {
		return nil, fmt.Errorf("read %s at %s in %s: is a directory: %w", clean, at, repo, ErrNotFound)
	}
	return buf.Bytes(), nil
}

// cleanRepoPath makes "./deploy/compose.yml" into "deploy/compose.yml" and refuses paths that leave the repository.
func cleanRepoPath(p string) (string, error) {
	c := path.Clean("/" + strings.TrimSpace(p))
	if c == "/" || strings.Contains(p, "\\") {
		return "", fmt.Errorf("path %q: not a file in the repository", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", fmt.Errorf("path %q: leaves the repository", p)
		}
	}
	return strings.TrimPrefix(c, "/"), nil
}

func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// errTooLarge stops a download that outgrows MaxFileBytes.
var errTooLarge = errors.New("file is larger than the limit")

// cappedBuffer is a bytes.Buffer that refuses to grow past limit.
type cappedBuffer struct {
	bytes.Buffer
	limit int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.limit {
		return 0, fmt.Errorf("%w of %d bytes", errTooLarge, b.limit)
	}
	return b.Buffer.Write(p)
}

// TarballURL is the API URL of a commit's source archive; GitHub answers it with a 302 to a
// short-lived download on another host, which the agent follows with its read-only token.
func (in *Installation) TarballURL(repo, sha string) string {
	owner, name, _ := strings.Cut(repo, "/")
	return fmt.Sprintf("%srepos/%s/%s/tarball/%s", in.conn.apiURL.String(), url.PathEscape(owner), url.PathEscape(name), url.PathEscape(sha))
}
