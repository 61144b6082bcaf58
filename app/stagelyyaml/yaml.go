package stagelyyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// reporter collects the problems of one file.
type reporter struct {
	path     string
	problems []Problem
	// mergeWork counts pairs visited through merge keys; see maxMergeWork.
	mergeWork     int
	mergeLimitHit bool
	// seen drops repeats: a mapping merged in several places reports its problem once.
	seen map[Problem]bool
}

// maxProblems keeps a broken or hostile file from producing an unreadable report;
// GitHub shows at most 50 annotations per check-run update anyway.
const maxProblems = 100

func (r *reporter) add(level Level, pos Pos, format string, args ...any) {
	p := Problem{
		Path:    r.path,
		Line:    pos.Line,
		Column:  pos.Column,
		Level:   level,
		Message: fmt.Sprintf(format, args...),
	}
	if r.seen == nil {
		r.seen = map[Problem]bool{}
	}
	if r.seen[p] {
		return
	}
	r.seen[p] = true
	r.problems = append(r.problems, p)
}

func (r *reporter) fail(n *yaml.Node, format string, args ...any) {
	r.add(LevelFailure, posOf(n), format, args...)
}

// syntaxLine pulls the line out of yaml.v3's "yaml: line N: ..." errors, the only place
// the parser reports a position.
var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblemPrefixes are the messages of yaml.v3's parser (as opposed to scanner)
// errors. For those, yaml.v3 v3.0.1 prints the mark's 0-based line (decode.go, fail()
// adds one only for scanner errors), so the real 1-based line is one more.
func parserProblemPrefixes() []string {
	return []string{"did not find expected", "found duplicate %", "found incompatible YAML document", "found undefined tag handle"}
}

// firstLinePrefixes start the scanner and parser messages. yaml.v3 omits "line N" when
// the error's mark is on the first line (0-based line 0), so such a message without a
// line is on line 1; reader errors (bad bytes) and alias errors carry no mark at all.
func firstLinePrefixes() []string {
	return []string{"did not find", "could not find", "found ", "mapping ", "block sequence entries", "exceeded max depth"}
}

func (r *reporter) syntax(err error, data []byte) {
	text := err.Error()
	line, msg := 0, strings.TrimPrefix(text, "yaml: ")
	if m := syntaxLine.FindStringSubmatch(text); m != nil {
		n, convErr := strconv.Atoi(m[1])
		if convErr == nil && n > 0 {
			line, msg = n, m[2]
		}
		for _, prefix := range parserProblemPrefixes() {
			if line > 0 && strings.HasPrefix(msg, prefix) {
				line++
				break
			}
		}
	} else if strings.HasPrefix(text, "yaml: ") {
		for _, prefix := range firstLinePrefixes() {
			if strings.HasPrefix(msg, prefix) {
				line = 1
				break
			}
		}
	}
	if line == 0 {
		r.add(LevelFailure, Pos{}, "invalid YAML: %s; fix the syntax (a YAML linter shows where)", msg)
		return
	}
	// A mark at the end of input can sit on the line after the last one; annotate a real line.
	last := bytes.Count(data, []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		last++
	}
	line = min(line, max(last, 1))
	r.add(LevelFailure, Pos{Line: line}, "invalid YAML: %s; check the indentation and quoting on this line and the lines around it", msg)
}

// sorted orders the problems by position, file-level ones first, keeping the first
// maxProblems and a summary of the rest.
func (r *reporter) sorted() []Problem {
	slices.SortStableFunc(r.problems, comparePos)
	if extra := len(r.problems) - maxProblems; extra > 0 {
		r.problems = append(r.problems[:maxProblems:maxProblems], Problem{
			Path: r.path, Level: LevelFailure,
			Message: fmt.Sprintf("%d more problems not listed; fix the ones above first", extra),
		})
	}
	return r.problems
}

func comparePos(a, b Problem) int {
	if a.Line != b.Line {
		return a.Line - b.Line
	}
	return a.Column - b.Column
}

func posOf(n *yaml.Node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{Line: n.Line, Column: n.Column}
}

// resolve follows an alias (*name) to the anchored node. Anchors sit on non-alias nodes,
// so this takes one step; an anchored node may still contain aliases to itself, which is
// why walks that descend into values are bounded (see maxMergeDepth).
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// documents decodes the YAML documents in data, reporting a syntax error and
// stopping at it. An empty file has no documents.
func (r *reporter) documents(data []byte, limit int) []*yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for len(docs) < limit {
		doc := new(yaml.Node)
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.syntax(err, data)
			break
		}
		docs = append(docs, doc)
	}
	return docs
}

// content is the top node of a document, or nil when the document is empty or null.
func content(doc *yaml.Node) *yaml.Node {
	if doc == nil || len(doc.Content) == 0 {
		return nil
	}
	n := resolve(doc.Content[0])
	if isNull(n) {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names what a node holds, for "found ..." in messages.
func describe(n *yaml.Node) string {
	n = resolve(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "an empty value"
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		default:
			return fmt.Sprintf("a %s value", n.ShortTag())
		}
	default:
		return "an unexpected YAML node"
	}
}

// field is one key/value pair of a mapping.
type field struct {
	name     string
	key, val *yaml.Node
}

// Bounds on merge-key (<<) expansion, so a crafted file of aliases cannot make us work
// exponentially: nesting depth, and pairs visited through merges per file.
const (
	maxMergeDepth = 8
	maxMergeWork  = 10000
)

// fields returns a mapping's pairs, reporting keys that are not scalars and duplicate
// keys (later duplicates are dropped). Merge keys (<<) are expanded when expand is
// set, explicit keys winning as YAML's merge rule says; otherwise they are reported.
func (r *reporter) fields(m *yaml.Node, where string, expand bool) []field {
	return r.walkFields(m, where, expand, 0)
}

// walkFields is fields at a merge depth. Below depth 0 it reports nothing about the
// merged mapping's own keys: that mapping is written elsewhere and is not ours to judge.
func (r *reporter) walkFields(m *yaml.Node, where string, expand bool, depth int) []field {
	var out []field
	seen := map[string]*yaml.Node{}
	var merged []field
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i], m.Content[i+1]
		rk := resolve(key)
		if rk == nil || rk.Kind != yaml.ScalarNode {
			if depth == 0 {
				r.fail(key, "keys in %s must be plain names; found %s", where, describe(key))
			}
			continue
		}
		if rk.ShortTag() == "!!merge" {
			if !expand {
				r.fail(key, "merge keys (<<) are not supported in %s; write the keys out", r.path)
				continue
			}
			merged = append(merged, r.mergeSources(val, where, depth+1)...)
			continue
		}
		if first, dup := seen[rk.Value]; dup {
			if depth == 0 {
				r.fail(key, "duplicate key %q in %s (first at line %d); keep only one", rk.Value, where, first.Line)
			}
			continue
		}
		seen[rk.Value] = key
		out = append(out, field{name: rk.Value, key: key, val: val})
	}
	for _, f := range merged {
		if _, dup := seen[f.name]; dup {
			continue
		}
		seen[f.name] = f.key
		out = append(out, f)
	}
	return out
}

// mergeSources returns the pairs a merge key's value brings in: a mapping, or a list of
// mappings where earlier ones win (walkFields applies that by dropping later duplicates).
func (r *reporter) mergeSources(val *yaml.Node, where string, depth int) []field {
	if depth > maxMergeDepth || r.mergeWork > maxMergeWork {
		if !r.mergeLimitHit {
			r.mergeLimitHit = true
			r.fail(val, "merge keys (<<) in %s nest or repeat too much to read; flatten them", where)
		}
		return nil
	}
	rv := resolve(val)
	var sources []*yaml.Node
	switch {
	case rv != nil && rv.Kind == yaml.MappingNode:
		sources = []*yaml.Node{rv}
	case rv != nil && rv.Kind == yaml.SequenceNode:
		sources = rv.Content
	default:
		r.fail(val, "a merge key (<<) in %s needs a mapping or a list of mappings; found %s", where, describe(val))
		return nil
	}
	var out []field
	for _, s := range sources {
		rs := resolve(s)
		if rs == nil || rs.Kind != yaml.MappingNode {
			r.fail(s, "a merge key (<<) in %s needs mappings; found %s", where, describe(s))
			continue
		}
		got := r.walkFields(rs, where, true, depth)
		r.mergeWork += len(got) + 1
		out = append(out, got...)
	}
	return out
}
