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

// linkSet holds the symlinks of an archive and resolves their targets as the kernel would:
// component by component, following every link met on the way, so a chain that climbs out
// of the tree through other links is seen for what it is.
//
// The links sit in a trie of path components. A walk is at a trie node plus a count of
// components below it that no link lies under: their names cannot matter, only how many
// `..` it takes to climb back. So each step costs one component, however deep the path.
type linkSet struct {
	targets map[string]string // slash path inside the tree → target
	order   []string          // in extraction order, for error messages that match the archive
	root    *node
	steps   int // path components walked so far, across the archive
}

// node is a folder on the way to a link, or a link.
type node struct {
	parent   *node
	children map[string]*node
	name     string // slash path inside the tree
	link     bool
}

func newLinkSet() *linkSet {
	return &linkSet{targets: map[string]string{}, root: &node{}}
}

// add records the symlink name → target and checks it against the links recorded so far,
// itself included, so a link that points at itself is a loop.
func (s *linkSet) add(name, target string) error {
	s.targets[name] = target
	s.order = append(s.order, name)
	n := s.root
	for comp := range strings.SplitSeq(name, "/") {
		child := n.children[comp]
		if child == nil {
			child = &node{parent: n, name: path.Join(n.name, comp)}
			if n.children == nil {
				n.children = map[string]*node{}
			}
			n.children[comp] = child
		}
		n = child
	}
	n.link = true
	return s.check(n, &resolver{set: s, memo: map[*node]resolved{}})
}

// checkAll checks every link again against all the others. A link can lead out through a
// link extracted after it (c/l2 → ../a/b/l1/.. before a/b/l1 → ../..), which add could
// not see; with every link known, the answer is final.
func (s *linkSet) checkAll() error {
	r := &resolver{set: s, memo: map[*node]resolved{}}
	for _, name := range s.order {
		n := s.root
		for comp := range strings.SplitSeq(name, "/") {
			n = n.children[comp]
		}
		if err := s.check(n, r); err != nil {
			return err
		}
	}
	return nil
}

func (s *linkSet) check(n *node, r *resolver) error {
	res := r.resolve(n)
	switch {
	case res.err == nil && 1+res.follows > maxLinkFollows:
		res.err = errLinkLoop
	case res.err == nil:
		return nil
	}
	msg := fmt.Sprintf("symlink %q points to %q", clip(n.name), clip(s.targets[n.name]))
	if errors.Is(res.err, errLinkAbove) || errors.Is(res.err, errLinkAbsolute) {
		msg += ", outside the tree"
	} else {
		msg += ": " + res.err.Error()
	}
	if res.via != nil {
		msg += fmt.Sprintf(" (through the symlink %q)", clip(res.via.name))
	}
	return fmt.Errorf("%w: %s", errUnsafeTarball, msg)
}

// resolved is where a link leads: below is the number of components under the trie node
// at that no link lies under. follows counts the links followed to get there, not the
// link itself.
type resolved struct {
	at      *node
	below   int
	follows int
	via     *node // the link through which the walk failed, if it went through one
	err     error
}

// resolver walks links of one linkSet. Its memo is valid while the set does not change;
// inProgress catches loops.
type resolver struct {
	set        *linkSet
	memo       map[*node]resolved
	inProgress map[*node]bool
}

func (r *resolver) resolve(link *node) resolved {
	if res, ok := r.memo[link]; ok {
		return res
	}
	if r.inProgress[link] {
		return resolved{err: errLinkLoop}
	}
	if r.inProgress == nil {
		r.inProgress = map[*node]bool{}
	}
	r.inProgress[link] = true
	res := r.walk(link.parent, r.set.targets[link.name])
	delete(r.inProgress, link)
	r.memo[link] = res
	return res
}

// walk follows target from the folder from, component by component.
func (r *resolver) walk(from *node, target string) resolved {
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
		switch {
		case comp == "" || comp == ".":
		case comp == ".." && res.below > 0:
			res.below--
		case comp == "..":
			if res.at.parent == nil {
				res.err = errLinkAbove
				return res
			}
			res.at = res.at.parent
		case res.below > 0 || res.at.children[comp] == nil:
			res.below++ // no link lies under this path
		case !res.at.children[comp].link:
			res.at = res.at.children[comp]
		default:
			link := res.at.children[comp]
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
			res.at, res.below = next.at, next.below
		}
	}
	return res
}

// clip cuts a name an archive controls to a length fit for an error message.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
