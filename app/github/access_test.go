package github_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stagely/stagely/app/github"
)

func TestRepoPermission_ReadsTheBaseLevelAndWhoTheLoginIs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	aliceID := f.sim.AddUser("alice")
	if err := f.sim.AddInstallationMember(f.inst, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		role, level string
		push        bool
	}{{"admin", "admin", true}, {"maintain", "write", true}, {"write", "write", true}, {"triage", "read", false}, {"read", "read", false}, {"none", "none", false}} {
		if err := f.sim.SetRepoRole(repoWeb, "alice", tt.role); err != nil {
			t.Fatal(err)
		}
		p, err := f.installation().RepoPermission(ctx, repoWeb, "alice")
		if err != nil || p.Level != tt.level || p.CanPush() != tt.push || p.UserID != aliceID {
			t.Fatalf("role %s: %+v %v, want level %s, push %v, user %d", tt.role, p, err, tt.level, tt.push, aliceID)
		}
	}
	if _, err := f.installation().RepoPermission(ctx, repoWeb, "nobody-here"); !errors.Is(err, github.ErrNotFound) {
		t.Fatalf("unknown login: %v, want ErrNotFound", err)
	}
}

func TestBranchHeadAndCompare_SayWhereACommitStands(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	in := f.installation()
	head, err := in.BranchHead(ctx, repoWeb, "main")
	if err != nil || head != f.sha2 {
		t.Fatalf("head of main = %s %v, want %s", head, err, f.sha2)
	}
	if _, err := in.BranchHead(ctx, repoWeb, "gone"); !errors.Is(err, github.ErrNotFound) {
		t.Fatalf("missing branch: %v, want ErrNotFound", err)
	}
	for _, tt := range []struct{ base, head, want string }{
		{f.sha1, f.sha2, github.CompareAhead},
		{f.sha2, f.sha1, github.CompareBehind},
		{f.sha2, f.sha2, github.CompareIdentical},
	} {
		if got, err := in.Compare(ctx, repoWeb, tt.base, tt.head); err != nil || got != tt.want {
			t.Fatalf("compare %s...%s = %q %v, want %s", tt.base[:7], tt.head[:7], got, err, tt.want)
		}
	}
	// A commit that went off the branch: force main back to the first commit and commit again.
	if _, err := f.sim.ForcePush(ctx, repoWeb, "main", f.sha1); err != nil {
		t.Fatal(err)
	}
	third, err := f.sim.Commit(ctx, repoWeb, "main", map[string][]byte{"x": []byte("x")}, "Third")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := in.Compare(ctx, repoWeb, f.sha2, third); err != nil || got != github.CompareDiverged {
		t.Fatalf("compare after a force push = %q %v, want diverged", got, err)
	}
}

func TestChangedFiles_ListsTheComparisonsFilesAndSaysWhenItCannot(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	in := f.installation()
	files, complete, err := in.ChangedFiles(ctx, repoWeb, f.sha1, f.sha2)
	if err != nil || !complete || !slices.Equal(files, []string{"deploy/compose.prod.yml", "compose.yaml", "stagely.yaml"}) {
		t.Fatalf("sha1...sha2: %q complete=%v %v", files, complete, err)
	}
	if _, complete, err := in.ChangedFiles(ctx, repoWeb, f.sha2, f.sha1); err != nil || complete {
		t.Fatalf("head behind base must not be complete: %v %v", complete, err)
	}
	tree := map[string][]byte{}
	for i := range github.MaxCompareFiles {
		tree[fmt.Sprintf("gen/f%03d.txt", i)] = []byte{byte(i)}
	}
	big, err := f.sim.Commit(ctx, repoWeb, "main", tree, "Generate")
	if err != nil {
		t.Fatal(err)
	}
	if files, complete, err := in.ChangedFiles(ctx, repoWeb, f.sha2, big); err != nil || complete || len(files) != github.MaxCompareFiles {
		t.Fatalf("a comparison at GitHub's cap: %d files, complete=%v %v", len(files), complete, err)
	}
	if _, _, err := in.ChangedFiles(ctx, repoWeb, f.sha1, strings.Repeat("9", 40)); !errors.Is(err, github.ErrNotFound) {
		t.Fatalf("unknown commit: %v, want ErrNotFound", err)
	}
}
