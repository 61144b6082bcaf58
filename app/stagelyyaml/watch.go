package stagelyyaml

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// MaxWatchPaths bounds watch_paths: a project that needs more is better served by a root
// directory that holds what it builds.
const MaxWatchPaths = 100

// CleanRootDirectory turns a project's root directory as a user types it ("./services/api/",
// "/services/api" is refused) into its stored form ("services/api"); "", "." and "./" are the
// repository root, stored as "". The error says what to change.
func CleanRootDirectory(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.ContainsRune(s, 0) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", errors.New("must not contain control characters")
	case strings.Contains(s, `\`):
		return "", errors.New(`must separate folders with "/", not backslashes`)
	case strings.HasPrefix(s, "/") || windowsDrive.MatchString(s):
		return "", errors.New("must be relative to the repository root, like services/api (no leading /)")
	case len(s) > 1024:
		return "", errors.New("must be at most 1024 bytes")
	}
	if s == "" {
		return "", nil
	}
	for _, seg := range strings.Split(strings.TrimSuffix(s, "/"), "/") {
		if seg == ".." {
			return "", errors.New(`must stay inside the repository: ".." is not allowed`)
		}
	}
	clean := path.Clean(s)
	if clean == "." {
		return "", nil
	}
	return clean, nil
}

// Watch decides which changed files concern a project: the files under its root directory,
// then watch_paths in order, the last pattern that matches a file deciding (a "!" pattern
// unwatches). The zero Watch watches nothing.
type Watch struct {
	root  string
	rules []watchRule
}

// watchRule is one compiled gitignore-style pattern.
type watchRule struct {
	negate bool
	// dirOnly patterns ("build/") match folders, so only files beneath them.
	dirOnly bool
	segs    []string
}

// NewWatch compiles the watch of a project whose root directory is root (cleaned, "" for the
// repository root) and whose stagely.yaml lists patterns as watch_paths (already validated by
// Parse; an invalid one is an error here).
func NewWatch(root string, patterns []string) (Watch, error) {
	w := Watch{root: root}
	for _, p := range patterns {
		r, problem := compileWatch(p)
		if problem != "" {
			return Watch{}, fmt.Errorf("watch_paths %q %s", p, problem)
		}
		w.rules = append(w.rules, r)
	}
	return w, nil
}

// Root is the root directory the watch starts from ("" for the repository root).
func (w Watch) Root() string { return w.root }

// Narrowed reports whether the watch can leave a change out: false when it takes every file
// of the repository (the repository root with no watch_paths).
func (w Watch) Narrowed() bool { return w.root != "" || len(w.rules) > 0 }

// HasPatterns reports whether watch_paths add patterns to the root directory.
func (w Watch) HasPatterns() bool { return len(w.rules) > 0 }

// Matches reports whether a change to file (repository-relative, "/"-separated) concerns
// the project.
func (w Watch) Matches(file string) bool {
	file = strings.TrimPrefix(file, "/")
	match := w.root == "" || file == w.root || strings.HasPrefix(file, w.root+"/")
	segs := strings.Split(file, "/")
	for _, r := range w.rules {
		if r.matches(segs) {
			match = !r.negate
		}
	}
	return match
}

// compileWatch reads a gitignore-style pattern: "*", "?" and "[...]" within a path segment,
// "**" across segments, a leading "!" negates, a trailing "/" matches folders only, and a
// pattern with no "/" but a trailing one matches at any depth; otherwise it is anchored at
// the repository root. problem says why a pattern is refused.
func compileWatch(p string) (watchRule, string) {
	var r watchRule
	body, negate := strings.CutPrefix(p, "!")
	r.negate = negate
	switch {
	case strings.TrimSpace(body) == "":
		return r, "is empty; write a path or glob relative to the repository root, like libs/shared/**"
	case strings.ContainsRune(body, 0) || strings.ContainsFunc(body, func(c rune) bool { return c < 0x20 || c == 0x7f }):
		return r, "contains control characters"
	case strings.Contains(body, `\`):
		return r, `uses a backslash; separate folders with "/" (escapes are not supported)`
	case windowsDrive.MatchString(body):
		return r, "is an absolute path; give a path relative to the repository root"
	}
	body, r.dirOnly = strings.CutSuffix(body, "/")
	anchored := strings.Contains(body, "/")
	body = strings.TrimPrefix(strings.TrimPrefix(body, "./"), "/")
	if body == "" {
		return r, "names the repository root, which every file is under; leave it out"
	}
	r.segs = strings.Split(body, "/")
	for _, seg := range r.segs {
		switch {
		case seg == "" || seg == ".":
			return r, `has an empty or "." folder; write the path without "//" or "/./"`
		case seg == "..":
			return r, `goes up with ".."; watch_paths are relative to the repository root, so write the path from there`
		}
		if _, err := path.Match(seg, ""); err != nil {
			return r, fmt.Sprintf("is not a valid glob (%q: unclosed [ or bad range)", seg)
		}
	}
	if !anchored {
		r.segs = append([]string{"**"}, r.segs...)
	}
	return r, ""
}

// matches reports whether the rule matches the file with path segments file, or one of the
// folders it is in.
func (r watchRule) matches(file []string) bool {
	last := len(file)
	if r.dirOnly {
		last-- // the file itself is not a folder
	}
	for n := 1; n <= last; n++ {
		if matchSegs(r.segs, file[:n]) {
			return true
		}
	}
	return false
}

// matchSegs matches pattern segments against path segments; "**" takes zero or more.
func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchSegs(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
