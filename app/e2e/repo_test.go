package e2e

import (
	"fmt"
	"strings"
)

// sampleRepo is a small web service with a worker, a pre_deploy hook and a health check.
type sampleRepo struct {
	image, page string
	port        int
	healthPort  int
	grace       string
	stagely     string // overrides the generated stagely.yaml when set
}

func (r sampleRepo) files() map[string][]byte {
	healthPort := r.healthPort
	if healthPort == 0 {
		healthPort = 8080
	}
	grace := r.grace
	if grace == "" {
		grace = "20s"
	}
	stagely := r.stagely
	if stagely == "" {
		stagely = fmt.Sprintf(`version: "1.0"
deployment:
  timeout: 120s
hooks:
  pre_deploy:
    - service: web
      command: "echo migrating the database"
services:
  web:
    health_check_grace_period: %s
`, grace)
	}
	compose := fmt.Sprintf(`services:
  web:
    build: .
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["127.0.0.1:%d:8080"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:%d/"]
      interval: 1s
      timeout: 2s
      retries: 2
  worker:
    image: %s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
`, r.port, healthPort, r.image)
	return map[string][]byte{
		"compose.yaml":    []byte(compose),
		"Dockerfile":      []byte("FROM " + r.image + "\nCOPY www /www\n"),
		"www/index.html":  []byte(r.page),
		"stagely.yaml":    []byte(stagely),
		"README.md":       []byte("# sample\n"),
		"scripts/noop.sh": []byte("#!/bin/sh\nexit 0\n"),
	}
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
