package deployer

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Limits on the symlinks of one repository tarball.
const (
	// maxLinkTarget is PATH_MAX: no system follows a longer link target.
	maxLinkTarget = 4096
	// maxLinkFollows is Linux's MAXSYMLINKS: a lookup that follows more links fails with ELOOP.
	maxLinkFollows = 40
	// maxResolveSteps bounds the path components walked to check all links of one archive,
	// so links made to fan out into each other cannot pin the agent's CPU. A repository with
	// 100 000 links of 20 components, each checked twice, takes a quarter of it.
	maxResolveSteps = 16 << 20
)

var (
	errLinkAbove    = errors.New("outside the tree")
	errLinkAbsolute = errors.New("absolute")
	errLinkLoop     = fmt.Errorf("a loop or a chain of more than %d symlinks", maxLinkFollows)
	errLinkBudget   = fmt.Errorf("the archive's symlinks take more than %d path components to resolve", maxResolveSteps)
)

// linkSet holds the symlinks of an archive, by slash path inside the tree, and resolves
// their targets as the kernel would: component by component, following every link met on
// the way, so a chain that climbs out of the tree through other links is seen for what it is.
type linkSet struct {
	targets map[string]string
	order   []string // in extraction order, for error messages that match the archive
	steps   int      // path components walked so far, across the archive
}

func newLinkSet() *linkSet { return &linkSet{targets: map[string]string{}} }

// add records the symlink name → target and checks it against the links recorded so far,
// itself included, so a link that points at itself is a loop.
func (s *linkSet) add(name, target string) error {
	s.targets[name] = target
	s.order = append(s.order, name)
	return s.check(name, &resolver{set: s, memo: map[string]resolved{}})
}

// checkAll checks every link again against all the others. A link can lead out through a
// link extracted after it (c/l2 → ../a/b/l1/.. before a/b/l1 → ../..), which add could
// not see; with every link known, the answer is final.
func (s *linkSet) checkAll() error {
	r := &resolver{set: s, memo: map[string]resolved{}}
	for _, name := range s.order {
		if err := s.check(name, r); err != nil {
			return err
		}
	}
	return nil
}

func (s *linkSet) check(name string, r *resolver) error {
	target := s.targets[name]
	res := r.resolve(name)
	switch {
	case res.err == nil && 1+res.follows > maxLinkFollows:
		res.err = errLinkLoop
	case res.err == nil:
		return nil
	}
	msg := fmt.Sprintf("symlink %q points to %q", clip(name), clip(target))
	if errors.Is(res.err, errLinkAbove) || errors.Is(res.err, errLinkAbsolute) {
		msg += ", outside the tree"
	} else {
		msg += ": " + res.err.Error()
	}
	if res.via != "" {
		msg += fmt.Sprintf(" (through the symlink %q)", clip(res.via))
	}
	return fmt.Errorf("%w: %s", errUnsafeTarball, msg)
}

// resolved is where a link leads: at is a slash path inside the tree ("" for the tree
// itself), follows the number of links followed to get there, not counting the link itself.
type resolved struct {
	at      string
	follows int
	via     string // the link through which the walk failed, if it went through one
	err     error
}

// resolver walks links of one linkSet. Its memo is valid while the set does not change;
// inProgress catches loops.
type resolver struct {
	set        *linkSet
	memo       map[string]resolved
	inProgress map[string]bool
}

func (r *resolver) resolve(name string) resolved {
	if res, ok := r.memo[name]; ok {
		return res
	}
	if r.inProgress[name] {
		return resolved{err: errLinkLoop}
	}
	if r.inProgress == nil {
		r.inProgress = map[string]bool{}
	}
	r.inProgress[name] = true
	res := r.walk(parentDir(name), r.set.targets[name])
	delete(r.inProgress, name)
	r.memo[name] = res
	return res
}

// walk follows target from the folder from, component by component.
func (r *resolver) walk(from, target string) resolved {
	if strings.HasPrefix(target, "/") {
		return resolved{err: errLinkAbsolute}
	}
	res := resolved{at: from}
	for comp := range strings.SplitSeq(target, "/") {
		r.set.steps++
		if r.set.steps > maxResolveSteps {
			res.err = errLinkBudget
			return res
		}
		switch comp {
		case "", ".":
		case "..":
			if res.at == "" {
				res.err = errLinkAbove
				return res
			}
			res.at = parentDir(res.at)
		default:
			if res.at == "" {
				res.at = comp
			} else {
				res.at += "/" + comp
			}
			if _, ok := r.set.targets[res.at]; !ok {
				continue
			}
			link := res.at
			next := r.resolve(link)
			res.via = link
			if next.err != nil {
				res.err = next.err
				return res
			}
			res.follows += 1 + next.follows
			if res.follows > maxLinkFollows {
				res.err = errLinkLoop
				return res
			}
			res.at = next.at
		}
	}
	return res
}

// parentDir is path.Dir with "" for the tree itself.
func parentDir(name string) string {
	if d := path.Dir(name); d != "." {
		return d
	}
	return ""
}

// clip cuts a name an archive controls to a length fit for an error message.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
