package githubsim

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"time"
)

// FaultKind is how GitHub fails a call.
type FaultKind int

// The failures a Fault can answer with, in the shapes GitHub uses.
const (
	// FaultBadGateway is 502 Bad Gateway, GitHub's front end giving up on its backend.
	FaultBadGateway FaultKind = iota + 1
	// FaultSecondaryLimit is 403 with Retry-After and GitHub's "You have exceeded a secondary
	// rate limit" message.
	FaultSecondaryLimit
	// FaultTooManyRequests is 429 with Retry-After and the same message: GitHub's docs say a
	// secondary limit answers "403 or 429".
	FaultTooManyRequests
)

// secondaryLimitMessage is GitHub's message for a secondary rate limit.
const secondaryLimitMessage = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. " +
	"If you reach out to GitHub Support for help, please include the request ID %s."

const docsSecondaryLimits = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits"

// Fault makes the API calls that match it fail, for tests of what a client does while GitHub
// is down or limiting it. Calls are recorded with the status they were answered with.
type Fault struct {
	// Method is the HTTP method to fail; empty fails every method.
	Method string
	// Path is a path.Match pattern of the URL path, e.g. "/repos/*/*/check-runs/*".
	Path string
	// Kind is the answer.
	Kind FaultKind
	// RetryAfter is the Retry-After of the rate-limit answers, in whole seconds (0 sends 60,
	// what GitHub usually asks for).
	RetryAfter time.Duration
	// Applied carries the request out before answering 502, as when GitHub's front end times
	// out on a backend that went on to finish: the write happened although the client saw a
	// failure. A rate-limited call is refused before it is read, so only 502 can be Applied.
	Applied bool
	// Times is how many calls fail; 0 fails every matching call until the fault is removed
	// or For has passed.
	Times int
	// For is how long, on the Sim's clock from AddFault, the fault lasts; 0 means until removed.
	For time.Duration
}

type activeFault struct {
	Fault
	id    int
	left  int
	until time.Time
}

// AddFault starts failing the calls that match f and returns its id for RemoveFault. When
// several faults match a call, the one added first answers it.
func (s *Sim) AddFault(f Fault) (int, error) {
	if f.Kind < FaultBadGateway || f.Kind > FaultTooManyRequests {
		return 0, fmt.Errorf("add fault: unknown kind %d", f.Kind)
	}
	if f.Applied && f.Kind != FaultBadGateway {
		return 0, fmt.Errorf("add fault: only a 502 can follow an applied request; GitHub refuses rate-limited calls unread")
	}
	if _, err := path.Match(f.Path, "/"); err != nil || f.Path == "" {
		return 0, fmt.Errorf("add fault: path pattern %q: want a path.Match pattern", f.Path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.faultSeq++
	af := &activeFault{Fault: f, id: s.st.faultSeq, left: f.Times}
	if f.For > 0 {
		af.until = s.now().Add(f.For)
	}
	s.st.faults = append(s.st.faults, af)
	return af.id, nil
}

// RemoveFault stops the fault with this id; an unknown id is ignored.
func (s *Sim) RemoveFault(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.st.faults {
		if f.id == id {
			s.st.faults = append(s.st.faults[:i], s.st.faults[i+1:]...)
			return
		}
	}
}

// ClearFaults stops every fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.faults = nil
}

// takeFault returns the fault that answers this call, counting it, if any.
func (s *Sim) takeFault(method, urlPath string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	kept := s.st.faults[:0]
	var hit *activeFault
	for _, f := range s.st.faults {
		if !f.until.IsZero() && !now.Before(f.until) {
			continue // over
		}
		if ok, _ := path.Match(f.Path, urlPath); hit == nil && ok && (f.Method == "" || f.Method == method) {
			hit = f
			if f.Times > 0 {
				f.left--
				if f.left == 0 {
					continue // used up
				}
			}
		}
		kept = append(kept, f)
	}
	s.st.faults = kept
	if hit == nil {
		return Fault{}, false
	}
	return hit.Fault, true
}

// faulty answers the calls a fault matches with that fault; the others go on to next.
func (s *Sim) faulty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := s.takeFault(r.Method, r.URL.Path)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		info(r.Context()).faulted = true
		if f.Applied {
			next.ServeHTTP(httptest.NewRecorder(), r)
		}
		if f.Kind == FaultBadGateway {
			writeError(w, http.StatusBadGateway, "Bad Gateway", docsREST)
			return
		}
		wait := f.RetryAfter
		if wait <= 0 {
			wait = time.Minute
		}
		w.Header().Set("Retry-After", strconv.Itoa(max(int(wait/time.Second), 1)))
		status := http.StatusForbidden
		if f.Kind == FaultTooManyRequests {
			status = http.StatusTooManyRequests
		}
		writeError(w, status, fmt.Sprintf(secondaryLimitMessage, randomHex(8)), docsSecondaryLimits)
	})
}
