package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// slowAPI is a reverse proxy in front of githubsim's REST API that, once slowed, answers
// every request only after a delay: a GitHub that takes seconds per call.
type slowAPI struct {
	url   string
	delay atomic.Int64
	calls atomic.Int64
}

func newSlowAPI(t *testing.T, target string) *slowAPI {
	t.Helper()
	s := &slowAPI{}
	s.url = interpose(t, target, func(proxy http.Handler, w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(s.delay.Load()); d > 0 {
			s.calls.Add(1)
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	})
	return s
}

// interpose starts a server in front of target that hands each request to handle along with
// a reverse proxy to target, and returns its URL with target's path (githubsim's API base
// keeps its trailing slash).
func interpose(t *testing.T, target string, handle func(proxy http.Handler, w http.ResponseWriter, r *http.Request)) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handle(proxy, w, r) }))
	t.Cleanup(srv.Close)
	return srv.URL + u.Path
}

// slow makes every later request wait d (0: no wait).
func (s *slowAPI) slow(d time.Duration) { s.delay.Store(int64(d)) }

// tcpProxy forwards TCP connections to a target. blackhole turns every connection open at
// that moment into a dead one that swallows what either side sends, as a network that
// silently stops delivering: the sender's writes still succeed. The connection closes once
// either end gives up on it; connections opened afterwards work again.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[*proxied]struct{}
	wg    sync.WaitGroup
}

type proxied struct {
	client, server net.Conn
	dead           atomic.Bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[*proxied]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			_ = c.client.Close()
			_ = c.server.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		c := &proxied{client: client, server: server}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, client, server)
		go p.pipe(c, server, client)
	}
}

// pipe copies from → to until either side ends, dropping the bytes once c is dead.
func (p *tcpProxy) pipe(c *proxied, from, to net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && !c.dead.Load() {
			if _, werr := to.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			_ = c.client.Close()
			_ = c.server.Close()
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
			return
		}
	}
}

// blackhole silences every connection open now and returns how many there were.
func (p *tcpProxy) blackhole() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.dead.Store(true)
	}
	return len(p.conns)
}

// postgres is a PostgreSQL server of one test's own, so the test may stop and start it
// without touching the cluster every other test uses.
type postgres struct {
	t    *testing.T
	dir  string
	port int
	cred *syscall.Credential
}

// pgBin is where Debian installs PostgreSQL 15's server programs.
const pgBin = "/usr/lib/postgresql/15/bin"

// startPostgres creates a cluster in a temporary directory and starts it on a free port, as
// the postgres user (PostgreSQL refuses to run as root).
func startPostgres(t *testing.T) *postgres {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("the postgres user is needed to run a private PostgreSQL (scripts/ensure-postgres.sh installs it): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "stagely-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	pg := &postgres{t: t, dir: dir, port: freePort(t), cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	t.Cleanup(func() {
		_ = pg.ctl("stop", "-m", "immediate")
		_ = os.RemoveAll(dir)
	})
	if out, err := pg.run("initdb", "-D", pg.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	pg.start()
	return pg
}

func (pg *postgres) data() string { return filepath.Join(pg.dir, "data") }

// url is the database URL of the cluster's postgres database.
func (pg *postgres) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

func (pg *postgres) run(prog string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(pgBin, prog), args...)
	cmd.Dir = pg.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	return cmd.CombinedOutput()
}

func (pg *postgres) ctl(args ...string) error {
	all := append([]string{"-D", pg.data(), "-w", "-t", "120"}, args...)
	out, err := pg.run("pg_ctl", all...)
	if err != nil {
		return fmt.Errorf("pg_ctl %v: %w\n%s", args, err, out)
	}
	return nil
}

// start starts the server and waits until it accepts connections.
func (pg *postgres) start() {
	pg.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", pg.port, pg.dir)
	if err := pg.ctl("start", "-l", filepath.Join(pg.dir, "log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(pg.dir, "log"))
		pg.t.Fatalf("%v\n%s", err, log)
	}
}

// stop stops the server, ending every connection to it (fast shutdown).
func (pg *postgres) stop() {
	pg.t.Helper()
	if err := pg.ctl("stop", "-m", "fast"); err != nil {
		pg.t.Fatal(err)
	}
}
