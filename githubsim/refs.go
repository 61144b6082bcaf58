package githubsim

import (
	"fmt"
	"net/http"
	"strings"
)

const (
	docsGetRef  = "https://docs.github.com/rest/git/refs#get-a-reference"
	docsCompare = "https://docs.github.com/rest/commits/commits#compare-two-commits"
)

// refLag is a branch whose ref reads answer an older head for a while.
type refLag struct {
	sha   string
	reads int
}

// LagBranch makes the next reads of a branch's ref (GET .../git/ref/heads/{branch}) answer
// sha instead of the branch's head, as GitHub's replicas can for a moment right after a push.
// Only the ref endpoint lags; everything else sees the branch as it is.
func (s *Sim) LagBranch(fullName, branch, sha string, reads int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.st.repo(fullName)
	if rp == nil || rp.commits[sha] == nil {
		return fmt.Errorf("lag branch %s of %s: no such repository or commit %s", branch, fullName, sha)
	}
	if rp.lags == nil {
		rp.lags = map[string]*refLag{}
	}
	rp.lags[branch] = &refLag{sha: sha, reads: reads}
	return nil
}

// getRef is GET /repos/{owner}/{repo}/git/ref/{ref}: ref is "heads/<branch>" or "tags/<tag>";
// anything else, or a ref that does not exist, is 404.
func (s *Sim) getRef(w http.ResponseWriter, r *http.Request, a repoAccess) {
	ref := r.PathValue("ref")
	s.mu.Lock()
	defer s.mu.Unlock()
	var sha string
	if name, ok := strings.CutPrefix(ref, "heads/"); ok {
		sha = a.repo.branches[name]
		if lag := a.repo.lags[name]; lag != nil && lag.reads > 0 {
			sha = lag.sha
			lag.reads--
		}
	} else if name, ok := strings.CutPrefix(ref, "tags/"); ok {
		sha = a.repo.tags[name]
	}
	if sha == "" {
		writeError(w, http.StatusNotFound, "Not Found", docsGetRef)
		return
	}
	api := s.st.baseURL + "/repos/" + a.repo.fullName()
	writeJSON(w, http.StatusOK, obj{
		"ref":     "refs/" + ref,
		"node_id": nodeID("Ref", a.repo.id),
		"url":     api + "/git/refs/" + ref,
		"object":  obj{"type": "commit", "sha": sha, "url": api + "/git/commits/" + sha},
	})
}

// Compare's published limits (the operation's description in @octokit/openapi): without
// paging parameters it lists at most 250 commits (the newest of them when there are more), and
// at most 300 changed files for the whole comparison.
const (
	maxCompareCommits = 250
	// MaxCompareFiles is how many changed files a comparison lists at most.
	MaxCompareFiles = 300
)

// compare is GET /repos/{owner}/{repo}/compare/{base}...{head}: status says where head stands
// from base (ahead, behind, identical or diverged), commits are those head has that base lacks
// (the newest 250), and files are what changed from the merge base to head (the first 300).
// Commits have one parent here, so the merge base is found on the first-parent chains.
func (s *Sim) compare(w http.ResponseWriter, r *http.Request, a repoAccess) {
	baseRef, headRef, ok := strings.Cut(r.PathValue("basehead"), "...")
	if !ok || baseRef == "" || headRef == "" {
		writeError(w, http.StatusNotFound, "Not Found", docsCompare)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	base, head := a.repo.resolve(baseRef), a.repo.resolve(headRef)
	if base == nil || head == nil {
		writeError(w, http.StatusNotFound, "Not Found", docsCompare)
		return
	}
	baseChain, headChain := firstParents(a.repo, base.sha), firstParents(a.repo, head.sha)
	mergeBase := ""
	for _, sha := range headChain.list {
		if _, in := baseChain.index[sha]; in {
			mergeBase = sha
			break
		}
	}
	if mergeBase == "" {
		// Unrelated histories: GitHub answers 404 "No common ancestor".
		writeError(w, http.StatusNotFound, "Not Found", docsCompare)
		return
	}
	aheadBy, behindBy := headChain.index[mergeBase], baseChain.index[mergeBase]
	status := "diverged"
	switch {
	case aheadBy == 0 && behindBy == 0:
		status = "identical"
	case behindBy == 0:
		status = "ahead"
	case aheadBy == 0:
		status = "behind"
	}
	commits := []any{}
	for i := min(aheadBy, maxCompareCommits) - 1; i >= 0; i-- { // oldest first, as GitHub lists them
		commits = append(commits, s.st.commitJSON(a.repo, a.repo.commits[headChain.list[i]]))
	}
	// The files are the diff from the merge base to head (a three-dot diff), cut at 300.
	files := s.st.diffEntries(a.repo, a.repo.commits[mergeBase].files, head, MaxCompareFiles)
	api := s.st.baseURL + "/repos/" + a.repo.fullName()
	html := s.st.baseURL + "/" + a.repo.fullName()
	basehead := r.PathValue("basehead")
	writeJSON(w, http.StatusOK, obj{
		"url":               api + "/compare/" + basehead,
		"html_url":          html + "/compare/" + basehead,
		"permalink_url":     html + "/compare/" + a.repo.owner + ":" + base.sha + "..." + a.repo.owner + ":" + head.sha,
		"diff_url":          html + "/compare/" + basehead + ".diff",
		"patch_url":         html + "/compare/" + basehead + ".patch",
		"base_commit":       s.st.commitJSON(a.repo, base),
		"merge_base_commit": s.st.commitJSON(a.repo, a.repo.commits[mergeBase]),
		"status":            status,
		"ahead_by":          aheadBy,
		"behind_by":         behindBy,
		"total_commits":     aheadBy,
		"commits":           commits,
		"files":             files,
	})
}

// chain is a commit and its first-parent ancestors, newest first, with each one's distance.
type chain struct {
	list  []string
	index map[string]int
}

func firstParents(rp *repo, sha string) chain {
	c := chain{index: map[string]int{}}
	for sha != "" {
		if _, seen := c.index[sha]; seen {
			break
		}
		c.index[sha] = len(c.list)
		c.list = append(c.list, sha)
		cm := rp.commits[sha]
		if cm == nil || len(cm.parents) == 0 {
			break
		}
		sha = cm.parents[0]
	}
	return c
}
