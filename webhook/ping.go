package webhook

import (
	"encoding/json"
	"fmt"

	"github.com/google/go-github/v60/github"
)

// Ping is the event GitHub sends when a webhook is created.
type Ping struct {
	// Zen is a random GitHub aphorism.
	Zen string
	// HookID is the webhook's id (top-level hook_id).
	HookID int64
	// HookType is "App", "Repository" or "Organization".
	HookType string
	// AppID is hook.app_id, set when the webhook belongs to a GitHub App.
	AppID int64
}

// EventName returns "ping".
func (Ping) EventName() string { return EventPing }
func (Ping) sealed()           {}

func pingFrom(e *github.PingEvent, body []byte) (Ping, error) {
	// go-github v60's Hook has no app_id field, so read that one field ourselves.
	var extra struct {
		Hook struct {
			AppID int64 `json:"app_id"`
		} `json:"hook"`
	}
	if err := json.Unmarshal(body, &extra); err != nil {
		return Ping{}, fmt.Errorf("%w: hook.app_id: %w", ErrPayloadMalformed, err)
	}
	p := Ping{
		Zen:      e.GetZen(),
		HookID:   e.GetHookID(),
		HookType: e.GetHook().GetType(),
		AppID:    extra.Hook.AppID,
	}
	if p.HookID == 0 {
		// hook_id is documented as always present; fall back to hook.id rather than fail a ping.
		p.HookID = e.GetHook().GetID()
	}
	return p, nil
}
