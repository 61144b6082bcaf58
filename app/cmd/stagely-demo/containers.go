package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"
)

// psEntry is the part of `docker compose ps --format json` the demo reads.
type psEntry struct {
	ID      string `json:"ID"`
	Service string `json:"Service"`
	State   string `json:"State"`
}

// containerIDs maps each service of a compose project to its running container's id.
func containerIDs(ctx context.Context, project string) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "docker", "compose", "-p", project, "ps", "--format", "json").Output()
	if err != nil {
		return nil, fmt.Errorf("docker compose -p %s ps: %w", project, err)
	}
	entries, err := parsePS(out)
	if err != nil {
		return nil, fmt.Errorf("docker compose -p %s ps: %w", project, err)
	}
	ids := make(map[string]string, len(entries))
	for _, e := range entries {
		ids[e.Service] = e.ID
	}
	return ids, nil
}

// parsePS reads compose's ps output, which is one JSON array on older compose and one object
// per line on newer (DESIGN.md §3): both are accepted.
func parsePS(out []byte) ([]psEntry, error) {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return nil, nil
	}
	if out[0] == '[' {
		var list []psEntry
		if err := json.Unmarshal(out, &list); err != nil {
			return nil, fmt.Errorf("parse ps output: %w", err)
		}
		return list, nil
	}
	var list []psEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e psEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("parse ps output line %q: %w", line, err)
		}
		list = append(list, e)
	}
	return list, sc.Err()
}

// containerEnv returns a container's environment as docker inspect reports it.
func containerEnv(ctx context.Context, id string) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "docker", "inspect", "--format", "{{json .Config.Env}}", id).Output()
	if err != nil {
		return nil, fmt.Errorf("docker inspect %s: %w", id, err)
	}
	var list []string
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("parse the environment of %s: %w", id, err)
	}
	env := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, _ := bytes.Cut([]byte(kv), []byte("="))
		env[string(k)] = string(v)
	}
	return env, nil
}

// composeDown removes everything of a compose project, the images it built included.
func composeDown(ctx context.Context, project string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "compose", "-p", project, "down", "-v", "--remove-orphans", "--rmi", "local", "-t", "1").CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker compose -p %s down: %w: %s", project, err, bytes.TrimSpace(out))
	}
	return nil
}
