package deploy

import (
	"testing"

	"github.com/stagely/stagely/agent/protocol"
)

func TestPlanOf_WordsEveryServiceChangeIncludingOnesThisServerDoesNotKnow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		services []protocol.ServiceStatus
		want     string
	}{
		{"no plan reported", []protocol.ServiceStatus{{Name: "web"}}, ""},
		{"a restart for a recreated dependency", []protocol.ServiceStatus{
			{Name: "api", Change: protocol.ChangeRestart}, {Name: "db", Change: protocol.ChangeRecreate},
			{Name: "web", Change: protocol.ChangeUnchanged}, {Name: "old", Change: protocol.ChangeRemove},
			{Name: "mail", Change: protocol.ChangeIgnored},
		}, "recreate: db · unchanged: web · new: — · restart: api · remove: old · ignored: mail"},
		{"a change word from a newer agent", []protocol.ServiceStatus{
			{Name: "api", Change: "migrate"}, {Name: "web", Change: protocol.ChangeUnchanged},
		}, "unchanged: web · migrate: api"},
		{"only unknown words", []protocol.ServiceStatus{{Name: "api", Change: "migrate"}}, "migrate: api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := planOf(tt.services); got != tt.want {
				t.Errorf("planOf = %q, want %q", got, tt.want)
			}
		})
	}
}
