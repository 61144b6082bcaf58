package stagelyyaml_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stagely/stagely/app/stagelyyaml"
)

func TestProblemString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		problem stagelyyaml.Problem
		want    string
	}{
		{"line and column", stagelyyaml.Problem{Path: "stagely.yaml", Line: 12, Column: 5, Level: stagelyyaml.LevelFailure, Message: "bad"},
			"stagely.yaml:12:5: bad"},
		{"line only", stagelyyaml.Problem{Path: "stagely.yaml", Line: 3, Level: stagelyyaml.LevelFailure, Message: "bad"},
			"stagely.yaml:3: bad"},
		{"whole file", stagelyyaml.Problem{Path: "compose.yaml", Level: stagelyyaml.LevelFailure, Message: "bad"},
			"compose.yaml: bad"},
		{"warning is marked", stagelyyaml.Problem{Path: "stagely.yaml", Line: 1, Column: 1, Level: stagelyyaml.LevelWarning, Message: "odd"},
			"stagely.yaml:1:1: warning: odd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.problem.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestProblemString_TypoInDeploymentReadsLikeACompiler(t *testing.T) {
	t.Parallel()
	input := strings.Repeat("# comment\n", 10) + "deployment:\n    timeuot: 5m\n"
	_, problems := stagelyyaml.Parse([]byte(input))
	if len(problems) != 1 {
		t.Fatalf("problems = %v, want one", problems)
	}
	want := `stagely.yaml:12:5: unknown key "timeuot" in deployment (did you mean "timeout"?)`
	if got := problems[0].String(); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestAsError_OnlyFailuresMakeAnError(t *testing.T) {
	t.Parallel()
	warning := stagelyyaml.Problem{Path: "stagely.yaml", Line: 1, Level: stagelyyaml.LevelWarning, Message: "w"}
	failure := stagelyyaml.Problem{Path: "stagely.yaml", Line: 2, Level: stagelyyaml.LevelFailure, Message: "f"}
	if err := stagelyyaml.AsError(nil); err != nil {
		t.Errorf("AsError(nil) = %v, want nil", err)
	}
	if err := stagelyyaml.AsError([]stagelyyaml.Problem{warning}); err != nil {
		t.Errorf("AsError(warning) = %v, want nil", err)
	}
	err := stagelyyaml.AsError([]stagelyyaml.Problem{warning, failure})
	var verr *stagelyyaml.ValidationError
	if !errors.As(err, &verr) || len(verr.Problems) != 2 {
		t.Fatalf("AsError(warning, failure) = %v, want a *ValidationError with both", err)
	}
	if want := "stagely.yaml:1: warning: w\nstagely.yaml:2: f"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}
