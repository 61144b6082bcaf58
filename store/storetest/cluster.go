package storetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/migrations"
	"github.com/stagely/stagely/store"
)

// EnvPGBin names the folder holding initdb and pg_ctl; by default the newest of Debian's
// /usr/lib/postgresql/*/bin.
const EnvPGBin = "STAGELY_TEST_PG_BIN"

// Cluster is a PostgreSQL server of one test's own, in a temporary folder on a free port, that
// the test may stop and start again: outage tests stop it, never the shared cluster every other
// test uses. It is removed when the test ends.
type Cluster struct {
	bin  string
	dir  string
	port int
	// asPostgres runs the server's tools as the postgres user: initdb refuses to run as root.
	asPostgres bool
}

// NewCluster creates and starts a cluster. A machine without the PostgreSQL server binaries
// fails the test with a message saying what to install; it is never skipped.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := os.Getenv(EnvPGBin)
	if bin == "" {
		found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
		if len(found) == 0 {
			t.Fatalf("storetest: no initdb under /usr/lib/postgresql/*/bin (apt-get install postgresql, or set %s)", EnvPGBin)
		}
		bin = filepath.Dir(found[len(found)-1])
	}
	dir, err := os.MkdirTemp("", "stagely-pg-")
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	c := &Cluster{bin: bin, dir: dir, asPostgres: os.Geteuid() == 0}
	t.Cleanup(func() {
		_ = c.pgctl("stop", "-m", "immediate")
		_ = os.RemoveAll(dir)
	})
	if c.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("storetest: running as root, initdb needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("storetest: %v", err)
		}
	}
	if out, err := c.command("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("storetest: initdb: %v\n%s", err, out)
	}
	c.port = freePort(t)
	c.Start(t)
	return c
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) command(tool string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, tool)
	if c.asPostgres {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (c *Cluster) pgctl(args ...string) error {
	args = append([]string{"-D", c.data(), "-w", "-t", "120"}, args...)
	out, err := c.command("pg_ctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Start starts the cluster (again) on its port and waits until it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", c.port, c.dir)
	if err := c.pgctl("start", "-l", filepath.Join(c.dir, "log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		t.Fatalf("storetest: start cluster: %v\n%s", err, log)
	}
}

// Stop stops the cluster at once (fast shutdown: clients are disconnected).
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.pgctl("stop", "-m", "fast"); err != nil {
		t.Fatalf("storetest: stop cluster: %v", err)
	}
}

// URL is the cluster's postgres database, as its superuser.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", c.port)
}

// NewStore returns a Store on the cluster's migrated postgres database, closed when the test ends.
func (c *Cluster) NewStore(t testing.TB) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, c.URL())
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := migrations.Up(ctx, st.DB()); err != nil {
		t.Fatalf("storetest: migrate: %v", err)
	}
	return st
}

// freePort asks the kernel for a free loopback port. Another process may take it before the
// cluster binds it; then the start fails with a message saying so.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
