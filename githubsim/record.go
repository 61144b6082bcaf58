package githubsim

import (
	"path"
	"time"
)

// CredentialKind says which kind of credential a call carried.
type CredentialKind string

// The credential kinds a Call can carry.
const (
	CredentialNone         CredentialKind = "none"
	CredentialJWT          CredentialKind = "app-jwt"
	CredentialInstallation CredentialKind = "installation-token"
	CredentialUser         CredentialKind = "user-token"
	CredentialUnknown      CredentialKind = "unknown-token"
)

// Call is one recorded HTTP request to the Sim and its status.
type Call struct {
	Method     string
	Path       string
	Query      string
	Status     int
	Body       []byte
	Credential CredentialKind
	// Faulted is true when a Fault (AddFault) answered the call instead of the API.
	Faulted bool
	At      time.Time
}

// Calls returns every call made so far, oldest first.
func (s *Sim) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.st.calls...)
}

// CallsMatching returns the calls with this method (empty: any) whose path matches pattern
// (path.Match syntax, e.g. "/repos/*/*/check-runs/*").
func (s *Sim) CallsMatching(method, pattern string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if method != "" && c.Method != method {
			continue
		}
		if ok, _ := path.Match(pattern, c.Path); ok {
			out = append(out, c)
		}
	}
	return out
}

// CallsWith returns the calls that carried this kind of credential.
func (s *Sim) CallsWith(kind CredentialKind) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Credential == kind {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the recorded calls, so a test can look at one phase alone.
func (s *Sim) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.calls = nil
}
