package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
)

// ids hands out distinct GitHub ids within one test binary.
type ids struct{ n atomic.Int64 }

func (i *ids) next() int64 { return 1000 + i.n.Add(1) }

type fixture struct {
	t    *testing.T
	ctx  context.Context
	st   *store.Store
	ids  *ids
	user store.User
	inst store.Installation
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), st: storetest.NewStore(t), ids: &ids{}}
	f.user = f.newUser("alice")
	f.inst = f.newInstallation("alice")
	return f
}

func (f *fixture) newUser(login string) store.User {
	f.t.Helper()
	return storetest.NewUser(f.t, f.st, store.User{GitHubID: f.ids.next(), Login: login})
}

func (f *fixture) newInstallation(login string) store.Installation {
	f.t.Helper()
	return storetest.NewInstallation(f.t, f.st, store.Installation{GitHubID: f.ids.next(), AccountLogin: login, AccountID: f.ids.next(), AccountType: "User"})
}

func (f *fixture) newAgent(userID int64, name string) store.Agent {
	f.t.Helper()
	return storetest.NewAgent(f.t, f.st, userID, name)
}

func (f *fixture) newProject(name string, repoID int64, branch string) store.Project {
	f.t.Helper()
	return storetest.NewProject(f.t, f.st, store.NewProject{
		UserID: f.user.ID, InstallationID: f.inst.ID, Name: name,
		RepoID: repoID, RepoFullName: "alice/" + name, DeployBranch: branch,
	})
}

func (f *fixture) newDeployment(projectID int64, n int) store.Deployment {
	f.t.Helper()
	d, err := f.st.CreateDeployment(f.ctx, store.NewDeployment{ProjectID: projectID, SHA: sha(n), Ref: "refs/heads/main", Trigger: store.TriggerPush})
	if err != nil {
		f.t.Fatalf("create deployment: %v", err)
	}
	return d
}

// dispatchedDeployment makes a deployment dispatched to a new agent of the fixture's user.
func (f *fixture) dispatchedDeployment(projectID int64, n int) store.Deployment {
	f.t.Helper()
	d := f.newDeployment(projectID, n)
	a := f.newAgent(f.user.ID, fmt.Sprintf("agent-%d-%d", projectID, n))
	if err := f.st.MarkDispatched(f.ctx, d.ID, a.ID, time.Now()); err != nil {
		f.t.Fatalf("dispatch deployment: %v", err)
	}
	d, err := f.st.DeploymentByID(f.ctx, d.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func sha(n int) string { return fmt.Sprintf("%040x", n) }

func wantErrContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}
