package main

import (
	"slices"
	"strings"
	"testing"
)

func TestLoadConfig_PreviewSettings(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `{"server_url":"https://stagely.example.com","token":"`+goodToken+`"}`, 0o600)
	tests := []struct {
		name    string
		env     map[string]string
		want    previewConfig
		wantErr string
	}{
		{"defaults fit Caddy's own admin address and port 443", nil,
			previewConfig{CaddyAdmin: "http://127.0.0.1:2019", AskListen: "127.0.0.1:2020", Listen: []string{":443"}, TLS: "acme"}, ""},
		{"every setting from the environment", map[string]string{
			"STAGELY_CADDY_ADMIN": "http://127.0.0.1:3019", "STAGELY_PREVIEW_ASK_LISTEN": "127.0.0.1:0",
			"STAGELY_PREVIEW_LISTEN": "127.0.0.1:8080, 127.0.0.1:8081", "STAGELY_PREVIEW_TLS": "Off"},
			previewConfig{CaddyAdmin: "http://127.0.0.1:3019", AskListen: "127.0.0.1:0", Listen: []string{"127.0.0.1:8080", "127.0.0.1:8081"}, TLS: "off"}, ""},
		{"an admin address without a scheme", map[string]string{"STAGELY_CADDY_ADMIN": "127.0.0.1:2019"}, previewConfig{}, "STAGELY_CADDY_ADMIN"},
		{"an ask check off loopback", map[string]string{"STAGELY_PREVIEW_ASK_LISTEN": "0.0.0.0:2020"}, previewConfig{}, "want a loopback address"},
		{"a listener without a port", map[string]string{"STAGELY_PREVIEW_LISTEN": "example.com"}, previewConfig{}, "STAGELY_PREVIEW_LISTEN"},
		{"an unknown TLS mode", map[string]string{"STAGELY_PREVIEW_TLS": "letsencrypt"}, previewConfig{}, "want acme, internal or off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := loadConfig(path, true, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := c.Previews
			if p.CaddyAdmin != tt.want.CaddyAdmin || p.AskListen != tt.want.AskListen || !slices.Equal(p.Listen, tt.want.Listen) || p.TLS != tt.want.TLS {
				t.Errorf("previews = %+v, want %+v", p, tt.want)
			}
		})
	}
}
