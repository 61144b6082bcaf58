package githubsim

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// downloadTTL is GitHub's: private archive links "are temporary and expire after five minutes".
const downloadTTL = 5 * time.Minute

const zeroSHA = "0000000000000000000000000000000000000000"

// CreateRepo adds a private repository owned by the installation's account, with no commits yet.
func (s *Sim) CreateRepo(installationID int64, fullName, defaultBranch string) error {
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("create repo %q: want owner/name", fullName)
	}
	if defaultBranch == "" {
		defaultBranch = "main"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst := s.st.installations[installationID]
	if inst == nil {
		return fmt.Errorf("create repo %s: installation %d not found", fullName, installationID)
	}
	if !strings.EqualFold(inst.account, owner) {
		return fmt.Errorf("create repo %s: installation %d is on %s, not %s", fullName, installationID, inst.account, owner)
	}
	if s.st.repo(fullName) != nil {
		return fmt.Errorf("create repo %s: already exists", fullName)
	}
	now := s.now().UTC().Truncate(time.Second)
	s.st.repos[strings.ToLower(fullName)] = &repo{
		id: s.st.id(), owner: inst.account, name: name, installationID: installationID, defaultBranch: defaultBranch,
		branches: map[string]string{}, tags: map[string]string{}, commits: map[string]*commit{},
		createdAt: now, pushedAt: now,
	}
	return nil
}

// Commit makes files the whole tree of a new commit on branch (created if missing), moves the branch
// and, when a webhook URL is set, delivers the matching push event. It returns the commit's sha; a
// delivery that could not be made is returned as an error beside the sha (the commit stays).
func (s *Sim) Commit(ctx context.Context, fullName, branch string, files map[string][]byte, message string) (string, error) {
	s.mu.Lock()
	rp := s.st.repo(fullName)
	if rp == nil {
		s.mu.Unlock()
		return "", fmt.Errorf("commit to %s: repository not found", fullName)
	}
	before := rp.branches[branch]
	c, err := s.st.newCommit(rp, before, files, message, s.now())
	if err != nil {
		s.mu.Unlock()
		return "", fmt.Errorf("commit to %s: %w", fullName, err)
	}
	rp.branches[branch] = c.sha
	rp.pushedAt = c.authored
	payload := s.st.pushPayload(rp, "refs/heads/"+branch, before, c.sha, before != "" && !isAncestor(rp, before, c.sha))
	s.mu.Unlock()
	if _, err := s.deliverPush(ctx, payload); err != nil && !errors.Is(err, ErrNoWebhookURL) {
		return c.sha, err
	}
	return c.sha, nil
}

// CommitDir is Commit with the tree read from a local folder (".git" is skipped).
func (s *Sim) CommitDir(ctx context.Context, fullName, branch, dir, message string) (string, error) {
	files, err := readTree(dir)
	if err != nil {
		return "", fmt.Errorf("commit %s to %s: %w", dir, fullName, err)
	}
	return s.Commit(ctx, fullName, branch, files, message)
}

// Branch returns the sha a branch points at, or "" if there is no such branch.
func (s *Sim) Branch(fullName, branch string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rp := s.st.repo(fullName); rp != nil {
		return rp.branches[branch]
	}
	return ""
}

// RepoID returns a repository's id, or 0 if there is no such repository.
func (s *Sim) RepoID(fullName string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rp := s.st.repo(fullName); rp != nil {
		return rp.id
	}
	return 0
}

func readTree(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tree: %w", err)
	}
	return files, nil
}

// newCommit stores a commit whose sha is the real git object id of its content.
func (st *state) newCommit(rp *repo, parent string, files map[string][]byte, message string, now time.Time) (*commit, error) {
	clean := make(map[string][]byte, len(files))
	for p, b := range files {
		cp := path.Clean(strings.TrimPrefix(filepath.ToSlash(p), "/"))
		if cp == "." || strings.HasPrefix(cp, "../") || cp == ".." {
			return nil, fmt.Errorf("bad path %q", p)
		}
		clean[cp] = append([]byte(nil), b...)
	}
	trees := treeSHAs(clean)
	author := signature{name: rp.owner, email: strings.ToLower(rp.owner) + "@users.noreply.sim", username: rp.owner}
	when := now.UTC().Truncate(time.Second)
	// Two commits in the same second with the same tree and parent would collide; git would too, so
	// move the clock on by a second as a person committing again would.
	for {
		c := &commit{treeSHA: trees[""], files: clean, message: message, author: author, authored: when}
		if parent != "" {
			c.parents = []string{parent}
		}
		c.sha = commitSHA(c)
		if _, taken := rp.commits[c.sha]; !taken {
			rp.commits[c.sha] = c
			return c, nil
		}
		when = when.Add(time.Second)
	}
}

func gitHash(kind string, body []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", kind, len(body))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func blobSHA(b []byte) string { return gitHash("blob", b) }

// treeSHAs hashes every directory of a flat file map as git would; "" is the root.
func treeSHAs(files map[string][]byte) map[string]string {
	children := map[string]map[string]bool{"": {}}
	for p := range files {
		dir := ""
		parts := strings.Split(p, "/")
		for i, part := range parts {
			if children[dir] == nil {
				children[dir] = map[string]bool{}
			}
			children[dir][part] = i < len(parts)-1
			dir = path.Join(dir, part)
		}
	}
	out := map[string]string{}
	var hash func(dir string) string
	hash = func(dir string) string {
		names := make([]string, 0, len(children[dir]))
		for n := range children[dir] {
			names = append(names, n)
		}
		// git orders tree entries as if directory names ended in "/".
		key := func(n string) string {
			if children[dir][n] {
				return n + "/"
			}
			return n
		}
		sort.Slice(names, func(i, j int) bool { return key(names[i]) < key(names[j]) })
		var buf bytes.Buffer
		for _, n := range names {
			full := path.Join(dir, n)
			var sum string
			mode := "100644"
			if children[dir][n] {
				sum, mode = hash(full), "40000"
			} else {
				sum = blobSHA(files[full])
			}
			raw, _ := hex.DecodeString(sum)
			fmt.Fprintf(&buf, "%s %s\x00", mode, n)
			buf.Write(raw)
		}
		out[dir] = gitHash("tree", buf.Bytes())
		return out[dir]
	}
	hash("")
	return out
}

func commitSHA(c *commit) string {
	var b strings.Builder
	fmt.Fprintf(&b, "tree %s\n", c.treeSHA)
	for _, p := range c.parents {
		fmt.Fprintf(&b, "parent %s\n", p)
	}
	sig := fmt.Sprintf("%s <%s> %d +0000", c.author.name, c.author.email, c.authored.Unix())
	fmt.Fprintf(&b, "author %s\ncommitter %s\n\n%s\n", sig, sig, c.message)
	return gitHash("commit", []byte(b.String()))
}

func isAncestor(rp *repo, ancestor, sha string) bool {
	for sha != "" {
		if sha == ancestor {
			return true
		}
		c := rp.commits[sha]
		if c == nil || len(c.parents) == 0 {
			return false
		}
		sha = c.parents[0]
	}
	return false
}

func (s *Sim) getRepo(w http.ResponseWriter, r *http.Request, a repoAccess) {
	s.mu.Lock()
	body := s.st.repository(a.repo, true)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// commitJSON is GitHub's commit object (GET /repos/{o}/{r}/commits/{ref}).
func (st *state) commitJSON(rp *repo, c *commit) obj {
	api := st.baseURL + "/repos/" + rp.fullName()
	person := obj{"name": c.author.name, "email": c.author.email, "date": iso(c.authored)}
	parents := []any{}
	for _, p := range c.parents {
		parents = append(parents, obj{"sha": p, "url": api + "/commits/" + p, "html_url": st.baseURL + "/" + rp.fullName() + "/commit/" + p})
	}
	var parentFiles map[string][]byte
	if len(c.parents) > 0 {
		parentFiles = rp.commits[c.parents[0]].files
	}
	files := st.diffEntries(rp, parentFiles, c, 0)
	return obj{
		"sha":          c.sha,
		"node_id":      nodeID("Commit", int64(len(c.sha))),
		"url":          api + "/commits/" + c.sha,
		"html_url":     st.baseURL + "/" + rp.fullName() + "/commit/" + c.sha,
		"comments_url": api + "/commits/" + c.sha + "/comments",
		"commit": obj{
			"url":           api + "/git/commits/" + c.sha,
			"author":        person,
			"committer":     person,
			"message":       c.message,
			"tree":          obj{"sha": c.treeSHA, "url": api + "/git/trees/" + c.treeSHA},
			"comment_count": 0,
			"verification":  obj{"verified": false, "reason": "unsigned", "signature": nil, "payload": nil, "verified_at": nil},
		},
		"author":    st.simpleUser(rp.owner),
		"committer": st.simpleUser(rp.owner),
		"parents":   parents,
		"stats":     obj{"additions": 0, "deletions": 0, "total": 0},
		"files":     files,
	}
}

// diffEntries lists the files that differ between the tree before and the tree of commit to
// as GitHub's diff entries (added, then removed, then modified, each by name), at most max
// when max > 0.
func (st *state) diffEntries(rp *repo, before map[string][]byte, to *commit, max int) []any {
	api := st.baseURL + "/repos/" + rp.fullName()
	files := []any{}
	added, removed, modified := diffFiles(before, to.files)
	for _, group := range []struct {
		status string
		names  []string
	}{{"added", added}, {"removed", removed}, {"modified", modified}} {
		for _, n := range group.names {
			if max > 0 && len(files) == max {
				return files
			}
			b := to.files[n]
			if group.status == "removed" {
				b = before[n]
			}
			files = append(files, obj{
				"sha": blobSHA(b), "filename": n, "status": group.status, "additions": 0, "deletions": 0, "changes": 0,
				"blob_url":     st.baseURL + "/" + rp.fullName() + "/blob/" + to.sha + "/" + n,
				"raw_url":      st.baseURL + "/" + rp.fullName() + "/raw/" + to.sha + "/" + n,
				"contents_url": api + "/contents/" + n + "?ref=" + to.sha,
			})
		}
	}
	return files
}

func diffFiles(before, after map[string][]byte) (added, removed, modified []string) {
	for _, n := range sortedKeys(after) {
		old, ok := before[n]
		switch {
		case !ok:
			added = append(added, n)
		case !bytes.Equal(old, after[n]):
			modified = append(modified, n)
		}
	}
	for _, n := range sortedKeys(before) {
		if _, ok := after[n]; !ok {
			removed = append(removed, n)
		}
	}
	return added, removed, modified
}

func (s *Sim) getCommit(w http.ResponseWriter, r *http.Request, a repoAccess) {
	s.mu.Lock()
	c := a.repo.resolve(r.PathValue("ref"))
	var body obj
	if c != nil {
		body = s.st.commitJSON(a.repo, c)
	}
	s.mu.Unlock()
	if c == nil {
		writeNoCommit(w, r.PathValue("ref"))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// writeNoCommit is GitHub's answer to an unknown ref on the commits endpoint.
func writeNoCommit(w http.ResponseWriter, ref string) {
	writeError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+ref, "https://docs.github.com/rest/commits/commits#get-a-commit")
}

const docsContents = "https://docs.github.com/rest/repos/contents#get-repository-content"

func (s *Sim) getContents(w http.ResponseWriter, r *http.Request, a repoAccess) {
	p := strings.Trim(r.PathValue("path"), "/")
	ref := r.URL.Query().Get("ref")
	s.mu.Lock()
	defer s.mu.Unlock()
	c := a.repo.resolve(ref)
	if c == nil {
		if ref == "" {
			writeError(w, http.StatusNotFound, "This repository is empty.", docsContents)
			return
		}
		writeError(w, http.StatusNotFound, "No commit found for the ref "+ref, docsContents)
		return
	}
	api := s.st.baseURL + "/repos/" + a.repo.fullName()
	html := s.st.baseURL + "/" + a.repo.fullName()
	entry := func(p, typ, sha string, size int) obj {
		self := api + "/contents/" + p + "?ref=" + url.QueryEscape(refOrDefault(ref, a.repo))
		gitURL := api + "/git/blobs/" + sha
		kind := "blob"
		var download any = s.rawURL(a.repo, c.sha, p)
		if typ == "dir" {
			gitURL = api + "/git/trees/" + sha
			kind = "tree"
			download = nil
		}
		htmlURL := html + "/" + kind + "/" + refOrDefault(ref, a.repo) + "/" + p
		return obj{
			"name": path.Base(p), "path": p, "sha": sha, "size": size, "type": typ, "url": self,
			"html_url": htmlURL, "git_url": gitURL, "download_url": download,
			"_links": obj{"self": self, "git": gitURL, "html": htmlURL},
		}
	}
	if b, ok := c.files[p]; ok {
		if strings.Contains(r.Header.Get("Accept"), "application/vnd.github.raw") {
			w.Header().Set("Content-Type", "application/vnd.github.raw; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(b)
			return
		}
		o := entry(p, "file", blobSHA(b), len(b))
		o["content"] = wrap60(base64.StdEncoding.EncodeToString(b))
		o["encoding"] = "base64"
		writeJSON(w, http.StatusOK, o)
		return
	}
	trees := treeSHAs(c.files)
	if _, isDir := trees[p]; !isDir && p != "" {
		writeError(w, http.StatusNotFound, "Not Found", docsContents)
		return
	}
	seen := map[string]bool{}
	list := []any{}
	prefix := ""
	if p != "" {
		prefix = p + "/"
	}
	for _, f := range sortedKeys(c.files) {
		rest, ok := strings.CutPrefix(f, prefix)
		if !ok {
			continue
		}
		name, _, isSub := strings.Cut(rest, "/")
		if seen[name] {
			continue
		}
		seen[name] = true
		if isSub {
			list = append(list, entry(prefix+name, "dir", trees[prefix+name], 0))
		} else {
			list = append(list, entry(f, "file", blobSHA(c.files[f]), len(c.files[f])))
		}
	}
	writeJSON(w, http.StatusOK, list)
}

func refOrDefault(ref string, rp *repo) string {
	if ref == "" {
		return rp.defaultBranch
	}
	return ref
}

// wrap60 breaks base64 into 60-character lines with a trailing newline, as the contents API does.
func wrap60(s string) string {
	var b strings.Builder
	for len(s) > 60 {
		b.WriteString(s[:60])
		b.WriteByte('\n')
		s = s[60:]
	}
	b.WriteString(s)
	b.WriteByte('\n')
	return b.String()
}

// rawURL mints a short-lived raw download URL on the download host (GitHub's download_url for a
// private repository carries a token the same way). Called with s.mu held.
func (s *Sim) rawURL(rp *repo, sha, p string) string {
	tok := randomHex(16)
	s.st.downloads[tok] = &download{repoID: rp.id, sha: sha, expiresAt: s.now().Add(downloadTTL)}
	return fmt.Sprintf("%s/%s/raw/%s/%s?token=%s", s.st.downloadURL, rp.fullName(), sha, p, tok)
}

func (s *Sim) getTarball(w http.ResponseWriter, r *http.Request, a repoAccess) {
	s.mu.Lock()
	c := a.repo.resolve(r.PathValue("ref"))
	var loc string
	if c != nil {
		tok := randomHex(16)
		s.st.downloads[tok] = &download{repoID: a.repo.id, sha: c.sha, expiresAt: s.now().Add(downloadTTL)}
		loc = fmt.Sprintf("%s/%s/legacy.tar.gz/%s?token=%s", s.st.downloadURL, a.repo.fullName(), c.sha, tok)
	}
	s.mu.Unlock()
	if c == nil {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/repos/contents#download-a-repository-archive-tar")
		return
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusFound)
}

// takeDownload finds the repository and commit of a download token that has not expired.
func (s *Sim) takeDownload(r *http.Request) (*repo, *commit, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.st.downloads[r.URL.Query().Get("token")]
	rp := s.st.repo(r.PathValue("owner") + "/" + r.PathValue("repo"))
	if d == nil || rp == nil || d.repoID != rp.id || d.sha != r.PathValue("sha") || !s.now().Before(d.expiresAt) {
		return nil, nil, false
	}
	return rp, rp.commits[d.sha], true
}

// serveDownload answers the codeload-style tarball URL: a gzip tar whose entries all sit under one
// top-level "{owner}-{repo}-{sha7}/" folder, after a pax global header carrying the commit id, as
// `git archive` (and so GitHub) writes it.
func (s *Sim) serveDownload(w http.ResponseWriter, r *http.Request) {
	rp, c, ok := s.takeDownload(r)
	if !ok {
		http.Error(w, "404: Not Found", http.StatusNotFound)
		return
	}
	top := fmt.Sprintf("%s-%s-%s", rp.owner, rp.name, c.sha[:7])
	var buf bytes.Buffer
	if err := writeTarball(&buf, top, c); err != nil {
		http.Error(w, "500: Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-gzip")
	w.Header().Set("Content-Disposition", "attachment; filename="+top+".tar.gz")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

func (s *Sim) serveRaw(w http.ResponseWriter, r *http.Request) {
	_, c, ok := s.takeDownload(r)
	if !ok {
		http.Error(w, "404: Not Found", http.StatusNotFound)
		return
	}
	b, found := c.files[r.PathValue("path")]
	if !found {
		http.Error(w, "404: Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(b)
}

func writeTarball(w *bytes.Buffer, top string, c *commit) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	mt := c.authored
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": c.sha},
	}); err != nil {
		return fmt.Errorf("write pax header: %w", err)
	}
	dirs := map[string]bool{}
	writeDir := func(d string) error {
		if dirs[d] {
			return nil
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top + "/" + d, Mode: 0o775, ModTime: mt, Format: tar.FormatPAX})
	}
	if err := writeDir(""); err != nil {
		return fmt.Errorf("write top folder: %w", err)
	}
	for _, p := range sortedKeys(c.files) {
		parts := strings.Split(p, "/")
		for i := 1; i < len(parts); i++ {
			if err := writeDir(strings.Join(parts[:i], "/") + "/"); err != nil {
				return fmt.Errorf("write folder of %s: %w", p, err)
			}
		}
		b := c.files[p]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: top + "/" + p, Mode: 0o664, Size: int64(len(b)), ModTime: mt, Format: tar.FormatPAX}); err != nil {
			return fmt.Errorf("write header of %s: %w", p, err)
		}
		if _, err := tw.Write(b); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close tar: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("close gzip: %w", err)
	}
	return nil
}
