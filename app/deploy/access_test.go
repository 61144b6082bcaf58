package deploy_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// TestAccess_OwnerWhoLostWriteAccessGetsNoSourceAndNoToken: a project deploys as its owner,
// so an owner who was removed from the repository must not keep receiving its source and a
// token for it on every push. The owner's access is asked of GitHub before a dispatch and
// kept five minutes.
func TestAccess_OwnerWhoLostWriteAccessGetsNoSourceAndNoToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		role string // alice's role on the repository once she loses write access
	}{
		{"demoted to read", "read"},
		{"removed from the repository", "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			a, p, _, _ := e.deployedTwice()
			asked := len(e.sim.CallsMatching(http.MethodGet, "/repos/*/*/collaborators/*/permission"))

			if err := e.sim.SetRepoRole(p.RepoFullName, "alice", tt.role); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(6 * time.Minute) // past what is kept of her earlier access
			jobs := len(e.hub.jobs())
			tokens := len(e.sim.CallsMatching(http.MethodPost, "/app/installations/*/access_tokens"))
			third := e.commit(p, "third")
			e.hub.setIdle(a.ID, true)
			e.push(p, third)
			d := e.latest(p)
			want := fmt.Sprintf("alice no longer has write access to %s; a user with write access must relink the project", p.RepoFullName)
			if d.Status != store.DeploymentFailure || d.Error != want {
				t.Fatalf("deployment %s %q, want failure %q", d.Status, d.Error, want)
			}
			if got := len(e.hub.jobs()); got != jobs {
				t.Fatal("the source of a repository went to an owner without access to it")
			}
			if got := len(e.sim.CallsMatching(http.MethodPost, "/app/installations/*/access_tokens")); got != tokens {
				t.Fatalf("%d tokens were minted for a deployment that must not run", got-tokens)
			}
			if run := e.checkRun(p, third); run.Conclusion != "failure" || !strings.Contains(run.Summary, want) {
				t.Fatalf("check run %q: %s", run.Conclusion, run.Summary)
			}
			if asked != 1 {
				t.Fatalf("two dispatches within five minutes asked GitHub for alice's access %d times, want once", asked)
			}
		})
	}
}

// deployedTwice makes a project on an idle agent and deploys its first commit, then a second,
// both with success.
func (e *env) deployedTwice() (a store.Agent, p store.Project, first, second string) {
	e.t.Helper()
	a = e.idleAgent("box")
	p, first = e.project(&a)
	e.deploy(a, p, first, time.Second, protocol.JobResult{Status: protocol.StatusSuccess})
	second = e.commit(p, "second")
	e.deploy(a, p, second, time.Second, protocol.JobResult{Status: protocol.StatusSuccess})
	return a, p, first, second
}

// TestPush_ReplayedOrOutOfOrderPushNeverRollsBack: a push deploys only if its commit is still
// the branch head, so a captured push sent again under a new delivery id, or an older push
// that GitHub delivers after a newer one, is ignored instead of rolling production back.
func TestPush_ReplayedOrOutOfOrderPushNeverRollsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, p, first, second := e.deployedTwice()
	deployments := func() int {
		ds, err := e.st.DeploymentsByProject(e.ctx, p.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(ds)
	}
	before := deployments()

	e.hub.setIdle(a.ID, true)
	want := "ignored: stale push, main is at " + second[:7]
	if got := e.pushEvent(p, webhook.Push{Before: zeroSHA, After: first}); got != want {
		t.Fatalf("a replay of the first push decided %q, want %q", got, want)
	}
	// GitHub delivers the push of third after the push of fourth.
	third := e.commit(p, "third")
	fourth := e.commit(p, "fourth")
	if got := e.pushEvent(p, webhook.Push{Before: third, After: fourth}); !strings.HasPrefix(got, "deployed as #") {
		t.Fatalf("the newer push decided %q", got)
	}
	want = "ignored: stale push, main is at " + fourth[:7]
	if got := e.pushEvent(p, webhook.Push{Before: second, After: third}); got != want {
		t.Fatalf("the older push, delivered late, decided %q, want %q", got, want)
	}
	if got := deployments() - before; got != 1 {
		t.Fatalf("%d deployments were made, want the newest push's alone", got)
	}
	if d := e.latest(p); d.SHA != fourth {
		t.Fatalf("the latest deployment is of %s, want %s", d.SHA[:7], fourth[:7])
	}
}

// TestPush_BranchHeadLaggingBehindThePushStillDeploys: right after a push GitHub's ref API can
// still show the old head for a moment; a push whose commit is ahead of what GitHub shows is
// new, and deploys once the ref catches up. A head that stays behind means the branch was
// forced back, and a push left off the branch by a force push is stale.
func TestPush_BranchHeadLaggingBehindThePushStillDeploys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent("box") // offline: deployments stay queued, which is all this test looks at
	p, first := e.project(&a)
	second := e.commit(p, "second")
	// GitHub's ref API answers first to the next read although second was pushed.
	if err := e.sim.LagBranch(p.RepoFullName, "main", first, 1); err != nil {
		t.Fatal(err)
	}
	if got := e.pushEvent(p, webhook.Push{Before: first, After: second}); !strings.HasPrefix(got, "deployed as #") {
		t.Fatalf("a push GitHub's ref has not caught up with decided %q", got)
	}
	// The maintainers force main back to first: the push of second, sent again, must not
	// bring second back.
	if _, err := e.sim.ForcePush(e.ctx, p.RepoFullName, "main", first); err != nil {
		t.Fatal(err)
	}
	want := "ignored: stale push, main is at " + first[:7]
	if got := e.pushEvent(p, webhook.Push{Before: first, After: second}); got != want {
		t.Fatalf("a replay after main was forced back decided %q, want %q", got, want)
	}
	third := e.commit(p, "third") // on first: second is on no branch now
	want = "ignored: stale push, main is at " + third[:7]
	if got := e.pushEvent(p, webhook.Push{Before: first, After: second}); got != want {
		t.Fatalf("a push force-pushed away decided %q, want %q", got, want)
	}
	if _, err := e.sim.ForcePush(e.ctx, p.RepoFullName, "main", second); err != nil {
		t.Fatal(err)
	}
	if got := e.pushEvent(p, webhook.Push{Before: third, After: second, Forced: true}); !strings.HasPrefix(got, "deployed as #") {
		t.Fatalf("a force push back to an older commit is the branch head and deploys, decided %q", got)
	}
}

// TestPush_ReplayOfADeployedPushIsStaleWhenTheHeadWasNeverDeployed: a head ahead of the
// pushed commit with no deployment yet is what two quick pushes look like, but when the pushed
// commit already has a deployment its push is not new: it is a replay (an old signed push sent
// again under a new delivery id) and must not roll production back, even when the push of the
// head never reached Stagely.
func TestPush_ReplayOfADeployedPushIsStaleWhenTheHeadWasNeverDeployed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent("box") // offline: deployments stay queued, which is all this test looks at
	p, first := e.project(&a)
	if got := e.pushEvent(p, webhook.Push{Before: zeroSHA, After: first}); !strings.HasPrefix(got, "deployed as #") {
		t.Fatalf("the first push decided %q", got)
	}
	deployed := e.latest(p)
	second := e.commit(p, "second") // its push is lost: Stagely never deploys second
	want := "ignored: stale push, main is at " + second[:7]
	if got := e.pushEvent(p, webhook.Push{Before: zeroSHA, After: first}); got != want {
		t.Fatalf("a replay of the first push decided %q, want %q", got, want)
	}
	if d := e.latest(p); d.ID != deployed.ID {
		t.Fatalf("the replay made deployment #%d of %s", d.ID, d.SHA[:7])
	}
}

const zeroSHA = "0000000000000000000000000000000000000000"

// pushEvent hands the push handler a push to the project's deploy branch; ev gives Before,
// After and Forced.
func (e *env) pushEvent(p store.Project, ev webhook.Push) string {
	e.t.Helper()
	return e.handlePush(0, p, ev)
}

// handlePush hands the push handler ev, received as webhook delivery (a webhook_deliveries id,
// or 0), as a push to the project's deploy branch.
func (e *env) handlePush(delivery int64, p store.Project, ev webhook.Push) string {
	e.t.Helper()
	ev.Ref = "refs/heads/" + p.DeployBranch
	ev.Repo = webhook.Repo{ID: p.RepoID, FullName: p.RepoFullName}
	ev.InstallationID = e.instGH
	decision, err := e.pushHandler().Handle(e.ctx, delivery, ev)
	if err != nil {
		e.t.Fatal(err)
	}
	return decision
}

// TestPush_TwoQuickPushesQueueTheOlderUntilTheNewerSupersedesIt: when the older of two quick
// pushes is handled, GitHub already shows the newer commit as the head. Stagely has no
// deployment of it yet, so its push is on its way: the older is queued, not called stale, and
// the newer supersedes it.
func TestPush_TwoQuickPushesQueueTheOlderUntilTheNewerSupersedesIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent("box") // offline: both stay queued
	p, first := e.project(&a)
	second := e.commit(p, "second")
	third := e.commit(p, "third")
	if got := e.pushEvent(p, webhook.Push{Before: first, After: second}); !strings.HasPrefix(got, "deployed as #") {
		t.Fatalf("the older push, handled before the newer, decided %q", got)
	}
	older := e.latest(p)
	if got := e.pushEvent(p, webhook.Push{Before: second, After: third}); !strings.HasPrefix(got, "deployed as #") {
		t.Fatalf("the newer push decided %q", got)
	}
	if d, err := e.st.DeploymentByID(e.ctx, older.ID); err != nil || d.Status != store.DeploymentSuperseded {
		t.Fatalf("the older push's deployment is %s (%v), want superseded", d.Status, err)
	}
	if d := e.latest(p); d.SHA != third {
		t.Fatalf("the latest deployment is of %s, want %s", d.SHA[:7], third[:7])
	}
}
