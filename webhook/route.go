package webhook

import (
	"encoding/json"
	"fmt"
)

// Route is what a delivery is filed and ordered by: the few facts every payload states at its
// top level. It is read once, when the delivery is recorded; the worker orders deliveries by
// it without reading the payload again, and decodes the payload only to act on it.
type Route struct {
	// Event is the X-GitHub-Event name.
	Event string
	// Action is the payload's "action", empty for events without one (push, ping).
	Action string
	// InstallationID is 0 when the payload names no installation (a repository webhook).
	InstallationID int64
	// RepoID is GitHub's repository id, 0 for events about no single repository
	// (installation, installation_repositories).
	RepoID int64
	// RepoFullName is "owner/name", empty when RepoID is 0.
	RepoFullName string
}

// Route reads the delivery's routing facts. A payload that is not a JSON object, or whose
// top-level fields have the wrong types, is an ErrPayloadMalformed error; the Route then
// still carries the event name.
func (d Delivery) Route() (Route, error) {
	var head struct {
		Action       string `json:"action"`
		Installation *struct {
			ID int64 `json:"id"`
		} `json:"installation"`
		Repository *struct {
			ID       int64  `json:"id"`
			FullName string `json:"full_name"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(d.Body, &head); err != nil {
		return Route{Event: d.Event}, fmt.Errorf("read the route of a %s payload: %w: %w", d.Event, ErrPayloadMalformed, err)
	}
	r := Route{Event: d.Event, Action: head.Action}
	if head.Installation != nil {
		r.InstallationID = head.Installation.ID
	}
	if head.Repository != nil {
		r.RepoID, r.RepoFullName = head.Repository.ID, head.Repository.FullName
	}
	return r, nil
}
