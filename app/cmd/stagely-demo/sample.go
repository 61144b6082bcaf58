package main

import "fmt"

// sampleRepo is the demo's repository: a web page served by busybox httpd (built from the
// repository, with a health check), a worker, and a stagely.yaml with a pre_deploy hook.
type sampleRepo struct {
	image string // the local busybox image
	port  int    // host port of the web service, on 127.0.0.1
	page  string
}

func (r sampleRepo) files() map[string][]byte {
	stagely := `version: "1.0"
deployment:
  timeout: 120s
  strategy: recreate
hooks:
  pre_deploy:
    - service: web
      command: "echo migrating the database; sleep 1; echo migrations applied"
services:
  web:
    health_check_grace_period: 20s
`
	compose := fmt.Sprintf(`services:
  web:
    build: .
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["127.0.0.1:%d:8080"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 2s
      retries: 3
  worker:
    image: %s
    # Reads its queue URL from the secret QUEUE_URL, scoped to this service only.
    command: ["sh", "-c", "echo worker started; exec sleep 2147483647"]
    stop_grace_period: 1s
`, r.port, r.image)
	return map[string][]byte{
		"compose.yaml":   []byte(compose),
		"Dockerfile":     []byte("FROM " + r.image + "\nCOPY www /www\n"),
		"www/index.html": []byte(r.page),
		"stagely.yaml":   []byte(stagely),
		"README.md":      []byte("# hello\n\nStagely's demo service: a page and a worker.\n"),
	}
}
