package stagelyyaml

import (
	"fmt"
	"strings"
)

// FileName is the name of the configuration file, in the project's root directory (the
// repository root unless the project sets one).
const FileName = "stagely.yaml"

// Level says whether a Problem stops a deployment.
type Level string

const (
	// LevelFailure stops the deployment; the pull-request check fails.
	LevelFailure Level = "failure"
	// LevelWarning is reported but does not stop the deployment.
	LevelWarning Level = "warning"
)

// Pos is a 1-based position in a YAML file; the zero Pos means "the whole file".
type Pos struct {
	Line   int
	Column int
}

// Problem is one finding in stagely.yaml or the compose file, placed at a file position.
type Problem struct {
	// Path is the repository-relative file the problem is in.
	Path string
	// Line and Column are 1-based; both are 0 for a problem about the whole file,
	// and Column alone is 0 when the YAML parser reports only a line.
	Line   int
	Column int
	Level  Level
	// Message says what is wrong and what to change.
	Message string
}

// String renders the problem like a compiler: "stagely.yaml:12:5: message".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Path)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Column > 0 {
			fmt.Fprintf(&b, ":%d", p.Column)
		}
	}
	b.WriteString(": ")
	if p.Level == LevelWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// HasFailure reports whether any of the problems stops a deployment.
func HasFailure(problems []Problem) bool {
	for _, p := range problems {
		if p.Level != LevelWarning {
			return true
		}
	}
	return false
}

// ValidationError is the error form of a list of problems, at least one of them a failure.
type ValidationError struct {
	Problems []Problem
}

// Error lists every problem, one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// AsError returns a *ValidationError holding all problems when one of them is a failure,
// and nil when there are none or only warnings.
func AsError(problems []Problem) error {
	if !HasFailure(problems) {
		return nil
	}
	return &ValidationError{Problems: problems}
}
