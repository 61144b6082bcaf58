module github.com/stagely/stagely/agent

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	gopkg.in/yaml.v3 v3.0.1
)
