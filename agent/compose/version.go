package compose

import (
	"context"
	"strconv"
	"strings"
)

// Version returns compose's version without a leading "v" (2.40.3), or "" when compose
// does not know it: a plugin built from source without its version stamped calls itself
// "dev", which would tell a user nothing. A runner asks compose once; a failed attempt
// (ctx ended, say) is not remembered.
func (r *Runner) Version(ctx context.Context) string {
	r.versionMu.Lock()
	defer r.versionMu.Unlock()
	if r.versionKnown {
		return r.version
	}
	out, err := r.Output(ctx, Project{}, "version", []string{"--short"}, nil)
	if err != nil {
		return ""
	}
	r.version, r.versionKnown = cleanVersion(string(out)), true
	return r.version
}

// cleanVersion is v without blanks and leading "v", or "" when it is not a version number.
func cleanVersion(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if _, ok := parseVersion(v); !ok {
		return ""
	}
	return v
}

// AtLeast reports whether version (as Version returns it) is major.minor or later. An
// unknown version counts as recent: unstamped builds come from recent source.
func AtLeast(version string, major, minor int) bool {
	v, ok := parseVersion(version)
	if !ok {
		return true
	}
	return v[0] > major || v[0] == major && v[1] >= minor
}

func parseVersion(v string) ([2]int, bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return [2]int{}, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return [2]int{}, false
	}
	return [2]int{major, minor}, true
}
