package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/agenttoken"
	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/hub"
	"github.com/stagely/stagely/app/logtest"
	"github.com/stagely/stagely/app/recordtest"
	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/store/storetest"
	"github.com/stagely/stagely/waittest"
)

// githubIDs hands out distinct GitHub ids within the test binary.
var githubIDs atomic.Int64

// fakeSink records every call and delegates to the …Fn field when set.
type fakeSink struct {
	AgentConnectedFn func(ctx context.Context, agentID int64, hello protocol.Hello)
	JobAcceptedFn    func(ctx context.Context, agentID int64, jobID string)
	JobPhaseFn       func(ctx context.Context, agentID int64, jobID, phase string)
	JobResultFn      func(ctx context.Context, agentID int64, res protocol.JobResult) error
	JobsHeldFn       func(ctx context.Context, agentID int64, held []protocol.HeldJob)

	events recordtest.List[string]
}

func (s *fakeSink) record(format string, args ...any) { s.events.Add(fmt.Sprintf(format, args...)) }

// Events returns the calls so far, as "Method args" strings.
func (s *fakeSink) Events() []string { return s.events.All() }

func (s *fakeSink) has(event string) bool {
	for _, e := range s.Events() {
		if e == event {
			return true
		}
	}
	return false
}

func (s *fakeSink) AgentConnected(ctx context.Context, agentID int64, hello protocol.Hello) {
	s.record("AgentConnected %d %s", agentID, hello.AgentVersion)
	if s.AgentConnectedFn != nil {
		s.AgentConnectedFn(ctx, agentID, hello)
	}
}

func (s *fakeSink) JobAccepted(ctx context.Context, agentID int64, jobID string) {
	s.record("JobAccepted %d %s", agentID, jobID)
	if s.JobAcceptedFn != nil {
		s.JobAcceptedFn(ctx, agentID, jobID)
	}
}

func (s *fakeSink) JobPhase(ctx context.Context, agentID int64, jobID, phase string) {
	s.record("JobPhase %d %s %s", agentID, jobID, phase)
	if s.JobPhaseFn != nil {
		s.JobPhaseFn(ctx, agentID, jobID, phase)
	}
}

func (s *fakeSink) JobPlan(_ context.Context, agentID int64, jobID string, plan protocol.Plan) {
	s.record("JobPlan %d %s %s", agentID, jobID, plan)
}

func (s *fakeSink) JobsHeld(ctx context.Context, agentID int64, held []protocol.HeldJob) {
	ids := make([]string, len(held))
	for i, j := range held {
		ids[i] = j.JobID + ":" + j.State
	}
	s.record("JobsHeld %d %s", agentID, strings.Join(ids, ","))
	if s.JobsHeldFn != nil {
		s.JobsHeldFn(ctx, agentID, held)
	}
}

func (s *fakeSink) JobResult(ctx context.Context, agentID int64, res protocol.JobResult) error {
	s.record("JobResult %d %s %s", agentID, res.JobID, res.Status)
	if s.JobResultFn != nil {
		return s.JobResultFn(ctx, agentID, res)
	}
	return nil
}

// logIndex is the number of the first line of the hub's log that holds every part, or -1.
func (e *env) logIndex(parts ...string) int {
	for i, line := range strings.Split(e.logs.String(), "\n") {
		found := true
		for _, p := range parts {
			found = found && strings.Contains(line, p)
		}
		if found {
			return i
		}
	}
	return -1
}

// disconnectedLine is how the hub logs that an agent's last connection ended.
func disconnectedLine(agentID int64) string {
	return fmt.Sprintf(`msg="agent disconnected" agent_id=%d`, agentID)
}

// countingStore is the real store with its calls counted.
type countingStore struct {
	*store.Store
	appendLogs atomic.Int64
	touches    atomic.Int64
	// SetAgentStatusFn, when set, runs before each status write (to slow one down).
	SetAgentStatusFn func(status string)
}

func (s *countingStore) SetAgentStatus(ctx context.Context, id int64, status string) error {
	if s.SetAgentStatusFn != nil {
		s.SetAgentStatusFn(status)
	}
	return s.Store.SetAgentStatus(ctx, id, status)
}

// AppendAgentLogs counts a call once it has returned, so a test that sees the count has
// also seen the statement's effect.
func (s *countingStore) AppendAgentLogs(ctx context.Context, deploymentID, agentID int64, lines []store.LogLine) error {
	defer s.appendLogs.Add(1)
	return s.Store.AppendAgentLogs(ctx, deploymentID, agentID, lines)
}

func (s *countingStore) TouchAgent(ctx context.Context, id int64, at time.Time) error {
	s.touches.Add(1)
	return s.Store.TouchAgent(ctx, id, at)
}

// sinkRefusing is a sink that fails to record the result of job jobID alone, as a
// database that is down for a moment.
func sinkRefusing(jobID string) *fakeSink {
	return &fakeSink{JobResultFn: func(_ context.Context, _ int64, res protocol.JobResult) error {
		if res.JobID == jobID {
			return errors.New("database down")
		}
		return nil
	}}
}

// env is one hub on a fresh database behind a real HTTP server.
type env struct {
	t     *testing.T
	ctx   context.Context
	st    *countingStore
	sink  *fakeSink
	hub   *hub.Hub
	srv   *httptest.Server
	logs  *logtest.Buffer
	user  store.User
	verif atomic.Int64 // VerifyToken calls
}

// newEnv starts a hub; tweak adjusts its options (Store, Sink and Logger are set already).
func newEnv(t *testing.T, sink *fakeSink, tweak func(*hub.Options)) *env {
	t.Helper()
	if sink == nil {
		sink = &fakeSink{}
	}
	e := &env{t: t, ctx: context.Background(), st: &countingStore{Store: storetest.NewStore(t)}, sink: sink, logs: &logtest.Buffer{}}
	e.user = storetest.NewUser(t, e.st.Store, store.User{GitHubID: 1000 + githubIDs.Add(1), Login: "alice"})
	opts := hub.Options{
		Store:  e.st,
		Sink:   sink,
		Logger: e.logs.Logger(),
		VerifyToken: func(token, hash string) error {
			e.verif.Add(1)
			return agenttoken.Verify(token, hash)
		},
	}
	if tweak != nil {
		tweak(&opts)
	}
	e.hub = hub.New(opts)
	mux := http.NewServeMux()
	mux.Handle("/agent/ws", e.hub)
	mux.Handle("/agent/bootstrap", e.hub.Bootstrap())
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.hub.Close()
		e.srv.Close()
	})
	return e
}

// newAgent creates an agent row and returns it with its token (minted at bcrypt's lowest
// cost: the hub checks it with the real bcrypt all the same).
func (e *env) newAgent(name string) (store.Agent, string) {
	e.t.Helper()
	return apptest.NewAgent(e.t, e.st.Store, e.user.ID, name)
}

// newDeployment creates a deployment row (logs need one) and returns its id as a job id.
// newDeployment makes a deployment dispatched to agentID, as the orchestrator would.
func (e *env) newDeployment(agentID int64) string {
	e.t.Helper()
	inst := storetest.NewInstallation(e.t, e.st.Store, store.Installation{GitHubID: 5000 + githubIDs.Add(1), AccountLogin: "alice", AccountID: 7, AccountType: "User"})
	n := githubIDs.Add(1)
	p := storetest.NewProject(e.t, e.st.Store, store.NewProject{UserID: e.user.ID, InstallationID: inst.ID, Name: fmt.Sprintf("web%d", n), RepoID: 9000 + n, RepoFullName: fmt.Sprintf("alice/web%d", n), DeployBranch: "main"})
	d, err := e.st.CreateDeployment(e.ctx, store.NewDeployment{ProjectID: p.ID, SHA: strings.Repeat("a", 40), Ref: "refs/heads/main", Trigger: store.TriggerPush})
	if err != nil {
		e.t.Fatalf("create deployment: %v", err)
	}
	if err := e.st.MarkDispatched(e.ctx, d.ID, agentID, time.Now()); err != nil {
		e.t.Fatalf("dispatch deployment: %v", err)
	}
	return fmt.Sprint(d.ID)
}

func (e *env) agentRow(id int64) store.Agent {
	e.t.Helper()
	a, err := e.st.AgentByID(e.ctx, id)
	if err != nil {
		e.t.Fatalf("read agent: %v", err)
	}
	return a
}

// waitStatus waits until the agent's stored status is want.
func (e *env) waitStatus(id int64, want string) store.Agent {
	e.t.Helper()
	var a store.Agent
	eventually(e.t, "agent status "+want, func() bool {
		a = e.agentRow(id)
		return a.Status == want
	})
	return a
}

func (e *env) wsURL() string { return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/agent/ws" }

// dial opens a raw WebSocket with the token; it returns the HTTP response on refusal.
func (e *env) dial(token string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	c, resp, err := websocket.Dial(ctx, e.wsURL(), &websocket.DialOptions{HTTPHeader: h})
	if err == nil {
		c.SetReadLimit(protocol.MaxFrameBytes)
		e.t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, resp, err
}

// connect dials and sends HELLO, then waits until the agent is online in the store.
func (e *env) connect(agentID int64, token string, hello protocol.Hello) *websocket.Conn {
	e.t.Helper()
	c, _, err := e.dial(token)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	send(e.t, c, protocol.TypeHello, hello)
	eventually(e.t, "agent connected", func() bool { return e.sink.has(fmt.Sprintf("AgentConnected %d %s", agentID, hello.AgentVersion)) })
	return c
}

// connectOnce connects the agent with token and helloV1, hangs up, and waits until the hub
// has marked it offline: the token has then been verified (and cached).
func (e *env) connectOnce(agentID int64, token string) {
	e.t.Helper()
	c := e.connect(agentID, token, helloV1())
	_ = c.CloseNow()
	e.waitStatus(agentID, "offline")
}

// connectUpdatesOff connects a new agent that could update itself but has automatic update
// switched off.
func (e *env) connectUpdatesOff() (store.Agent, *websocket.Conn) {
	e.t.Helper()
	agent, token := e.newAgent("box")
	if err := e.st.SetAgentAutoUpdate(e.ctx, agent.ID, false); err != nil {
		e.t.Fatal(err)
	}
	return agent, e.connect(agent.ID, token, updatable())
}

// connectNew creates an agent named name and connects it with helloV1.
func (e *env) connectNew(name string) (store.Agent, *websocket.Conn) {
	e.t.Helper()
	agent, token := e.newAgent(name)
	return agent, e.connect(agent.ID, token, helloV1())
}

// dispatch creates a deployment for the agent, dispatches it, and reads the DEPLOY the
// agent's connection c receives; it returns the job id.
func (e *env) dispatch(agentID int64, c *websocket.Conn) string {
	e.t.Helper()
	jobID := e.newDeployment(agentID)
	if err := e.hub.Dispatch(e.ctx, agentID, protocol.Deploy{JobID: jobID}); err != nil {
		e.t.Fatal(err)
	}
	expect(e.t, c, protocol.TypeDeploy)
	return jobID
}

func helloV1() protocol.Hello {
	return protocol.Hello{AgentVersion: "v1.2.3", Protocol: protocol.Version, Hostname: "box-1", Docker: "27.1.0", Compose: "2.40.3"}
}

func send(t *testing.T, c *websocket.Conn, typ string, payload any) {
	t.Helper()
	b, err := protocol.Encode(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	sendRaw(t, c, b)
}

func sendRaw(t *testing.T, c *websocket.Conn, b []byte) {
	t.Helper()
	// Generous: the frame may wait behind megabytes the hub is still reading.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("write frame: %v", err)
	}
}

// recv reads the next frame from the server.
func recv(t *testing.T, c *websocket.Conn) (string, any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return readFrame(ctx, t, c)
}

// readFrame reads and decodes the next frame from the server before ctx ends.
func readFrame(ctx context.Context, t *testing.T, c *websocket.Conn) (string, any) {
	t.Helper()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	typ, v, err := protocol.Decode(b)
	if err != nil {
		t.Fatalf("decode frame %s: %v", b, err)
	}
	return typ, v
}

// expect reads the next frame from the server and fails unless it is of type typ; it
// returns the payload.
func expect(t *testing.T, c *websocket.Conn, typ string) any {
	t.Helper()
	got, v := recv(t, c)
	if got != typ {
		t.Fatalf("got %s %+v, want %s", got, v, typ)
	}
	return v
}

// closeOf reads until the server closes the connection and returns its close status.
func closeOf(t *testing.T, c *websocket.Conn) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended without a close frame: %v", err)
		}
		return ce
	}
}

// eventually polls cond for up to a minute: a loaded CI machine can take seconds where an
// idle one takes milliseconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waittest.Until(t, time.Minute, what, cond)
}

// decodeMessage reads the JSON error body of a refused request.
func decodeMessage(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var body struct {
		Message string `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode error body: %v", err)
	}
	return body.Message
}

// newServer serves h until the test ends and returns its base URL.
func newServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// jsonDecode decodes a response body.
func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// getStatus answers the status of a GET.
func getStatus(ctx context.Context, t *testing.T, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
