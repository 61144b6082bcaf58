package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"

	"github.com/stagely/stagely/agent/compose"
)

// containerIDs maps each service of a compose project to its running container's id.
func containerIDs(ctx context.Context, project string) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "docker", "compose", "-p", project, "ps", "--format", "json").Output()
	if err != nil {
		return nil, fmt.Errorf("docker compose -p %s ps: %w", project, err)
	}
	entries, err := compose.ParsePS(out)
	if err != nil {
		return nil, fmt.Errorf("docker compose -p %s ps: %w", project, err)
	}
	ids := make(map[string]string, len(entries))
	for _, e := range entries {
		ids[e.Service] = e.ID
	}
	return ids, nil
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
