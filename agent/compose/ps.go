package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Container is one container as `docker compose ps --format json` describes it. Only the
// fields both output formats share are kept.
type Container struct {
	ID       string `json:"ID"`
	Name     string `json:"Name"`
	Project  string `json:"Project"`
	Service  string `json:"Service"`
	State    string `json:"State"`
	Health   string `json:"Health"`
	ExitCode int    `json:"ExitCode"`
	// OneOff is set for a container `compose run` made (a hook, say) rather than one of the
	// service's own: `ps --all` lists those too. Compose says so in a label.
	OneOff bool `json:"OneOff,omitempty"`
}

// oneOffLabel is the label compose puts on the containers of `compose run`.
const oneOffLabel = "com.docker.compose.oneoff"

// ParsePS reads `docker compose ps --format json` output in either of its two shapes:
// one JSON array (compose before v2.21.0) or one JSON object per line (v2.21.0 and later).
// Empty output means no containers; a value that is not an object (null, say) is refused
// rather than read as a container with no name, service or state.
func ParsePS(out []byte) ([]Container, error) {
	trimmed := bytes.TrimSpace(out)
	if len(trimmed) == 0 {
		return nil, nil
	}
	if trimmed[0] == '[' {
		var raws []json.RawMessage
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			return nil, fmt.Errorf("parse compose ps array: %w", err)
		}
		cs := make([]Container, len(raws))
		for i, raw := range raws {
			if err := decodeContainer(raw, &cs[i]); err != nil {
				return nil, fmt.Errorf("parse compose ps array item %d: %w", i+1, err)
			}
		}
		return cs, nil
	}
	// A JSON decoder reads consecutive values whatever whitespace separates them.
	var cs []Container
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	for dec.More() {
		var raw json.RawMessage
		var c Container
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("parse compose ps line %d: %w", len(cs)+1, err)
		}
		if err := decodeContainer(raw, &c); err != nil {
			return nil, fmt.Errorf("parse compose ps line %d: %w", len(cs)+1, err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func decodeContainer(raw json.RawMessage, c *Container) error {
	if len(raw) == 0 || raw[0] != '{' {
		return fmt.Errorf("want a JSON object, got %.20s", raw)
	}
	if err := json.Unmarshal(raw, c); err != nil {
		return err
	}
	// Labels are one "k=v,k=v" string in compose's JSON lines; an object is read too.
	var l struct {
		Labels any `json:"Labels"`
	}
	if json.Unmarshal(raw, &l) == nil {
		switch v := l.Labels.(type) {
		case string:
			c.OneOff = c.OneOff || strings.Contains(","+v+",", ","+oneOffLabel+"=True,")
		case map[string]any:
			c.OneOff = c.OneOff || v[oneOffLabel] == "True"
		}
	}
	return nil
}

// PS lists every container of the project, stopped ones included.
//
// Containers are found by their project label, so only the project name is passed: with
// no -f, compose loads no file at all (not even one found in the working directory or
// COMPOSE_FILE), which saves about a third of the command's time.
func (r *Runner) PS(ctx context.Context, p Project) ([]Container, error) {
	byName := p
	if p.Name != "" {
		byName.Files = nil
	}
	out, err := r.Output(ctx, byName, "ps", []string{"--all", "--format", "json"}, nil)
	if err != nil {
		return nil, err
	}
	return ParsePS(out)
}
