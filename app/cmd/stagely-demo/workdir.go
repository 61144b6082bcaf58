package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// markerFile marks a directory as the demo's own, so clearing it at start never removes
// anything a user pointed --workdir at by mistake.
const markerFile = ".stagely-demo"

// runState is what a run leaves for the next one to clean up if it could not (kill -9).
type runState struct {
	ComposeProjects []string `json:"compose_projects"`
}

func statePath(workdir string) string { return filepath.Join(workdir, "state.json") }

// readState returns the previous run's leftovers; a missing file means none.
func readState(workdir string) (runState, error) {
	var s runState
	b, err := os.ReadFile(statePath(workdir))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read demo state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return runState{}, fmt.Errorf("parse %s: %w (delete it)", statePath(workdir), err)
	}
	return s, nil
}

func writeState(workdir string, s runState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode demo state: %w", err)
	}
	if err := os.WriteFile(statePath(workdir), b, 0o600); err != nil {
		return fmt.Errorf("write demo state: %w", err)
	}
	return nil
}

// resetWorkdir empties workdir (creating it when missing) and marks it as the demo's. A
// directory that has files but no marker is refused.
func resetWorkdir(workdir string) error {
	entries, err := os.ReadDir(workdir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read workdir: %w", err)
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(workdir, markerFile)); err != nil {
			return fmt.Errorf("refusing to clear --workdir %s: it is not empty and was not made by stagely-demo (no %s file)", workdir, markerFile)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(workdir, e.Name())); err != nil {
				return fmt.Errorf("clear workdir: %w", err)
			}
		}
	}
	if err := os.MkdirAll(workdir, 0o700); err != nil {
		return fmt.Errorf("create workdir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(workdir, markerFile), []byte("made by stagely-demo; cleared at each run\n"), 0o600); err != nil {
		return fmt.Errorf("mark workdir: %w", err)
	}
	return nil
}
