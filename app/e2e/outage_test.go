package e2e

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/app/samplerepo"
	"github.com/stagely/stagely/store"
)

// missedPushes is how many pushes each outage test makes while Stagely cannot take them.
const missedPushes = 5

// TestWebhooksMissedWhileTheServerIsDownAreRecovered stops the server while pushes happen to
// one branch. GitHub does not retry the failed deliveries; the restarted server finds them in
// the App's delivery log and asks for them again. Every one comes back and gets its decision;
// the branch ends at its newest commit, deployed once, and the older pushes are superseded.
func TestWebhooksMissedWhileTheServerIsDownAreRecovered(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	o := newOutage(t, s)

	s.server.stop(t)
	o.pushWhileDown(func(code int, err error) bool { return code == 0 && err != nil })
	s.startServer()
	o.assertRecovered()
}

// TestWebhooksRefusedWhilePostgreSQLIsDownAreRecovered cuts the server off PostgreSQL (a TCP
// proxy between them stops passing connections) while pushes happen: the server is up but
// refuses each webhook, since it cannot record it. Once PostgreSQL is back, the server's
// periodic pass over the delivery log asks for every refused delivery again.
func TestWebhooksRefusedWhilePostgreSQLIsDownAreRecovered(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{serverEnv: []string{"STAGELY_WEBHOOK_RECOVERY_INTERVAL=1s"}})
	proxy := startPGProxy(t, s.dsn)
	s.server.stop(t)
	s.serverEnv = append(s.serverEnv, "STAGELY_DATABASE_URL="+proxy.dsn)
	s.startServer()
	o := newOutage(t, s)

	proxy.setDown(true)
	o.pushWhileDown(func(code int, err error) bool { return code >= 500 && err == nil })
	proxy.setDown(false)
	o.assertRecovered()
}

// outage is one outage test's branch: a first push deployed live, then the pushes missed.
type outage struct {
	t     *testing.T
	s     *stack
	repo  samplerepo.Repo
	shas  []string
	guids []string
}

// newOutage deploys a first push live, so the branch has a deployed commit before the outage.
func newOutage(t *testing.T, s *stack) *outage {
	t.Helper()
	o := &outage{t: t, s: s, repo: samplerepo.Repo{Image: dockertest.BusyboxImage(t), Port: freePort(t), Page: "live\n"}}
	live := s.push("main", o.repo.Files(), "before the outage")
	s.wantDeployed(live, 3*time.Minute, "push before the outage")
	return o
}

// pushWhileDown pushes missedPushes commits to main; failed says whether GitHub's attempt
// failed the way the outage makes it fail (its status code, the error of the attempt).
func (o *outage) pushWhileDown(failed func(code int, err error) bool) {
	o.t.Helper()
	for i := range missedPushes {
		o.repo.Page = fmt.Sprintf("missed %d\n", i+1)
		sha, err := o.s.sim.Commit(o.s.ctx, o.s.repo, "main", o.repo.Files(), fmt.Sprintf("missed %d", i+1))
		ds := o.s.sim.Deliveries()
		d := ds[len(ds)-1]
		if sha == "" || !failed(d.StatusCode, err) {
			o.t.Fatalf("push %d during the outage: sha %q, answered %d, err %v", i+1, sha, d.StatusCode, err)
		}
		o.shas, o.guids = append(o.shas, sha), append(o.guids, d.ID)
	}
}

// assertRecovered waits for every missed push to be recorded and decided, then checks the
// branch ended at the newest, deployed once, with the older ones superseded, and reports the
// figure "pushes recovered after an outage out of pushes made".
func (o *outage) assertRecovered() {
	t, s := o.t, o.s
	t.Helper()
	newest := o.shas[len(o.shas)-1]
	// Generous: the pass, GitHub's redeliveries and the worker all run on a loaded machine.
	waitFor(t, 3*time.Minute, "every missed push redelivered and decided", func() bool {
		for _, g := range o.guids {
			d, err := s.st.DeliveryByDeliveryID(s.ctx, g)
			if err != nil || (d.Status != store.DeliveryDone && d.Status != store.DeliveryFailed) {
				return false
			}
		}
		return true
	})
	recovered := 0
	for i, g := range o.guids {
		d := s.delivery(g)
		if d.Status != store.DeliveryDone {
			t.Errorf("missed push %d (%s): %s %q", i+1, o.shas[i][:7], d.Status, d.Decision)
			continue
		}
		recovered++
		want := "superseded: "
		if o.shas[i] == newest {
			want = "deployed as #"
		}
		if !strings.HasPrefix(d.Decision, want) {
			t.Errorf("missed push %d (%s) decided %q, want %q…", i+1, o.shas[i][:7], d.Decision, want)
		}
	}
	t.Logf("pushes recovered after an outage: %d of %d", recovered, len(o.guids))

	s.wantDeployed(newest, 3*time.Minute, "the newest missed push")
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", o.repo.Port)); got != fmt.Sprintf("missed %d\n", missedPushes) {
		t.Fatalf("the branch ended serving %q, want the newest commit", got)
	}
	bySHA := map[string][]store.Deployment{}
	for _, d := range s.deployments() {
		bySHA[d.SHA] = append(bySHA[d.SHA], d)
	}
	for i, sha := range o.shas {
		ds := bySHA[sha]
		if len(ds) != 1 {
			t.Fatalf("missed push %d (%s) has %d deployments, want 1", i+1, sha[:7], len(ds))
		}
		want := store.DeploymentSuperseded
		if sha == newest {
			want = store.DeploymentSuccess
		}
		if ds[0].Status != want {
			t.Errorf("missed push %d (%s) is %s, want %s", i+1, sha[:7], ds[0].Status, want)
		}
		if sha != newest {
			if run := s.deployCheck(sha, 1, time.Minute); run.Conclusion != "skipped" {
				t.Errorf("check run of superseded push %d: %q %s", i+1, run.Conclusion, run.Title)
			}
		}
	}
	// Each missed event was asked for once, and a later pass asks for nothing more.
	redelivered := map[string]int{}
	for _, d := range s.sim.Deliveries() {
		if d.Redelivery {
			redelivered[d.ID]++
		}
	}
	for i, g := range o.guids {
		if redelivered[g] != 1 {
			t.Errorf("missed push %d was redelivered %d times, want 1", i+1, redelivered[g])
		}
	}
	if len(redelivered) != len(o.guids) {
		t.Errorf("%d events redelivered, want only the %d missed", len(redelivered), len(o.guids))
	}
}

// pgProxy passes TCP connections to PostgreSQL until setDown(true), which closes every
// connection and refuses new ones: the server sees PostgreSQL go down, without stopping the
// PostgreSQL other tests share.
type pgProxy struct {
	dsn string
	ln  net.Listener
	up  string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startPGProxy(t *testing.T, dsn string) *pgProxy {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, up: u.Host, conns: map[net.Conn]struct{}{}}
	u.Host = ln.Addr().String()
	p.dsn = u.String()
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *pgProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve pipes one client connection to PostgreSQL until either side closes or setDown.
func (p *pgProxy) serve(c net.Conn) {
	defer p.wg.Done()
	up, err := net.Dial("tcp", p.up)
	if err != nil || !p.track(c, up) {
		c.Close()
		if up != nil {
			up.Close()
		}
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	p.untrack(c, up)
	c.Close()
	up.Close()
	<-done
}

// track registers conns, or says false when the proxy is down.
func (p *pgProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *pgProxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}

func (p *pgProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}
