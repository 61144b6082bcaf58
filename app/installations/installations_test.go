package installations_test

import (
	"context"
	"testing"
	"time"

	"github.com/stagely/stagely/app/installations"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
	"github.com/stagely/stagely/webhook"
)

func TestHandler_KeepsTheInstallationsTableTrue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	h := installations.NewHandler(st, func() time.Time { return now })
	suspendedAt := now.Add(-time.Hour)
	acme := webhook.Installation{ID: 42, AccountLogin: "acme", AccountID: 9, AccountType: "Organization"}
	with := func(action string, change func(*webhook.Installation)) webhook.Installation {
		ev := acme
		ev.Action = action
		if change != nil {
			change(&ev)
		}
		return ev
	}
	// One installation's life, in the order GitHub sends it; each step sees the last one's row.
	steps := []struct {
		name     string
		ev       webhook.Installation
		decision string
		active   bool
		check    func(t *testing.T, in store.Installation)
	}{
		{"created records it", with("created", nil), "installation 42 on acme recorded", true, nil},
		{"suspend keeps GitHub's time", with("suspend", func(e *webhook.Installation) { e.SuspendedAt = suspendedAt }),
			"installation 42 on acme suspended: its projects deploy nothing until it is unsuspended", false,
			func(t *testing.T, in store.Installation) {
				if !in.SuspendedAt.Time.Equal(suspendedAt) {
					t.Fatalf("suspended at %v, want %v", in.SuspendedAt.Time, suspendedAt)
				}
			}},
		{"unsuspend makes it active", with("unsuspend", nil), "installation 42 on acme unsuspended", true, nil},
		{"suspend without a time uses the clock", with("suspend", nil),
			"installation 42 on acme suspended: its projects deploy nothing until it is unsuspended", false,
			func(t *testing.T, in store.Installation) {
				if !in.SuspendedAt.Time.Equal(now) {
					t.Fatalf("suspended at %v, want now %v", in.SuspendedAt.Time, now)
				}
			}},
		{"new permissions are an update", with("new_permissions_accepted", func(e *webhook.Installation) { e.AccountType = "Bot" }),
			"installation 42 on acme updated (new_permissions_accepted)", true,
			func(t *testing.T, in store.Installation) {
				if in.AccountType != "User" {
					t.Fatalf("account type %q: an unknown type is recorded as User", in.AccountType)
				}
			}},
		{"deleted stops it deploying", with("deleted", nil), "installation 42 on acme deleted: its projects deploy nothing", false,
			func(t *testing.T, in store.Installation) {
				if !in.DeletedAt.Valid {
					t.Fatal("not marked deleted")
				}
			}},
		{"an unknown action changes nothing", with("renamed", nil), "ignored: installation renamed", false, nil},
		{"created again brings it back", with("created", nil), "installation 42 on acme recorded", true, nil},
	}
	for _, s := range steps {
		decision, err := h.Handle(ctx, 0, s.ev)
		if err != nil || decision != s.decision {
			t.Fatalf("%s: decided %q, %v; want %q", s.name, decision, err, s.decision)
		}
		in, err := st.InstallationByGitHubID(ctx, 42)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if in.Active() != s.active {
			t.Fatalf("%s: active %v, want %v (%+v)", s.name, in.Active(), s.active, in)
		}
		if s.check != nil {
			s.check(t, in)
		}
	}
	decision, err := h.Handle(ctx, 0, webhook.Installation{Action: "deleted", ID: 77})
	if err != nil || decision != "installation 77 deleted (it was not known here)" {
		t.Fatalf("deleting an unknown installation: %q, %v", decision, err)
	}
}

func TestRepositoriesHandler_NamesTheProjectsThatCanNoLongerDeploy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t)
	u := storetest.NewUser(t, st, store.User{GitHubID: 1, Login: "alice"})
	in := storetest.NewInstallation(t, st, store.Installation{GitHubID: 42, AccountLogin: "acme", AccountID: 9, AccountType: "Organization"})
	storetest.NewProject(t, st, store.NewProject{UserID: u.ID, InstallationID: in.ID, Name: "web",
		RepoID: 500, RepoFullName: "acme/site", DeployBranch: "main"})
	h := installations.NewRepositoriesHandler(st)
	tests := []struct {
		name string
		ev   webhook.InstallationRepositories
		want string
	}{
		{"added", webhook.InstallationRepositories{Action: "added", InstallationID: 42, Added: []webhook.Repo{{ID: 501, FullName: "acme/new"}}},
			"installation 42: 1 repositories added, 0 removed"},
		{"removed without a project", webhook.InstallationRepositories{Action: "removed", InstallationID: 42, Removed: []webhook.Repo{{ID: 502, FullName: "acme/old"}}},
			"installation 42: 0 repositories added, 1 removed"},
		{"removed with a project", webhook.InstallationRepositories{Action: "removed", InstallationID: 42, Removed: []webhook.Repo{{ID: 500, FullName: "acme/site"}}},
			"installation 42: 0 repositories added, 1 removed: acme/site (project web can no longer deploy)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h.Handle(ctx, 0, tt.ev)
			if err != nil || got != tt.want {
				t.Fatalf("decided %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
