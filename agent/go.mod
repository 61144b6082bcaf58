module github.com/stagely/stagely/agent

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/moby/patternmatcher v0.6.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/kr/pretty v0.3.1 // indirect
	github.com/rogpeppe/go-internal v1.10.0 // indirect
	gopkg.in/check.v1 v1.0.0-20201130134442-10cb98267c6c // indirect
)
