// Package samplerepo is the repository `make demo` deploys and the end-to-end tests push: a
// web page served by busybox httpd (built from the repository, with a health check), a
// worker, and a stagely.yaml with a pre_deploy hook. Its services run on a local busybox
// image, since there is no registry to pull from.
package samplerepo

import "fmt"

// Defaults of the fields a caller may leave empty.
const (
	// DefaultHook is the web service's pre_deploy command.
	DefaultHook = "echo migrating the database"
	// DefaultGrace is the web service's health_check_grace_period.
	DefaultGrace = "20s"
	// containerPort is where httpd listens inside the web container.
	containerPort = 8080
)

// Repo describes one version of the sample repository; Files renders it.
type Repo struct {
	// Image is the local busybox image both services run on.
	Image string
	// Port is the host port of the web service, on 127.0.0.1.
	Port int
	// Page is www/index.html, what the web service answers.
	Page string
	// HealthPort is the port the health check probes inside the container: the right one
	// (8080) when zero; any other breaks the health check.
	HealthPort int
	// Grace is the web service's health_check_grace_period; DefaultGrace when empty.
	Grace string
	// Hook is the web service's pre_deploy command; DefaultHook when empty.
	Hook string
	// StagelyYAML replaces the generated stagely.yaml when set.
	StagelyYAML string
}

// Files returns the repository's files by path, as a commit holds them.
func (r Repo) Files() map[string][]byte {
	return map[string][]byte{
		"compose.yaml":    []byte(r.compose()),
		"Dockerfile":      []byte("FROM " + r.Image + "\nCOPY www /www\n"),
		"www/index.html":  []byte(r.Page),
		"stagely.yaml":    []byte(r.stagely()),
		"README.md":       []byte("# hello\n\nStagely's sample service: a page and a worker.\n"),
		"scripts/noop.sh": []byte("#!/bin/sh\nexit 0\n"),
	}
}

func (r Repo) stagely() string {
	if r.StagelyYAML != "" {
		return r.StagelyYAML
	}
	return fmt.Sprintf(`version: "1.0"
deployment:
  timeout: 120s
  strategy: recreate
hooks:
  pre_deploy:
    - service: web
      command: %q
services:
  web:
    health_check_grace_period: %s
`, or(r.Hook, DefaultHook), or(r.Grace, DefaultGrace))
}

func (r Repo) compose() string {
	healthPort := r.HealthPort
	if healthPort == 0 {
		healthPort = containerPort
	}
	return fmt.Sprintf(`services:
  web:
    build: .
    command: ["httpd", "-f", "-p", "%[1]d", "-h", "/www"]
    ports: ["127.0.0.1:%[2]d:%[1]d"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:%[3]d/"]
      interval: 1s
      timeout: 2s
      retries: 3
  worker:
    image: %[4]s
    # Reads its settings from secrets, such as a QUEUE_URL scoped to this service alone.
    command: ["sh", "-c", "echo worker started; exec sleep 2147483647"]
    stop_grace_period: 1s
`, containerPort, r.Port, healthPort, r.Image)
}

func or(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
