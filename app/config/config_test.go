package config_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/app/config"
)

func TestLoad_RetentionTakesDaysDurationsOrZeroAndRefusesTheRest(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	tests := []struct {
		name    string
		env     map[string]string
		want    config.Retention
		problem string
	}{
		{"defaults", nil, config.Retention{Logs: 90 * day, KeepLastLogs: 10, Deliveries: 30 * day}, ""},
		{"days and a count", map[string]string{"STAGELY_LOG_RETENTION": "14d", "STAGELY_LOG_KEEP_LAST": "3", "STAGELY_DELIVERY_RETENTION": "7d"},
			config.Retention{Logs: 14 * day, KeepLastLogs: 3, Deliveries: 7 * day}, ""},
		{"Go durations", map[string]string{"STAGELY_LOG_RETENTION": "36h", "STAGELY_DELIVERY_RETENTION": "200h"},
			config.Retention{Logs: 36 * time.Hour, KeepLastLogs: 10, Deliveries: 200 * time.Hour}, ""},
		{"zero keeps for ever", map[string]string{"STAGELY_LOG_RETENTION": "0", "STAGELY_DELIVERY_RETENTION": "0d", "STAGELY_LOG_KEEP_LAST": "0"},
			config.Retention{}, ""},
		{"deliveries forgotten before GitHub stops redelivering", map[string]string{"STAGELY_DELIVERY_RETENTION": "3d"}, config.Retention{}, "want at least 7d"},
		{"not a duration", map[string]string{"STAGELY_LOG_RETENTION": "three months"}, config.Retention{}, "STAGELY_LOG_RETENTION \"three months\" is not a number of days"},
		{"negative days", map[string]string{"STAGELY_LOG_RETENTION": "-1d"}, config.Retention{}, "STAGELY_LOG_RETENTION"},
		{"negative count", map[string]string{"STAGELY_LOG_KEEP_LAST": "-2"}, config.Retention{}, "STAGELY_LOG_KEEP_LAST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(func(k string) string { return tt.env[k] }, config.Needs{})
			if tt.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("Load = %v, want a problem containing %q", err, tt.problem)
				}
				return
			}
			if err != nil || cfg.Retention != tt.want {
				t.Fatalf("Load = %+v, %v; want %+v", cfg.Retention, err, tt.want)
			}
		})
	}
}

func TestLoad_HTTPAndWebhookTimeouts(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(func(string) string { return "" }, config.Needs{})
	if err != nil || cfg.HTTPIdleTimeout != config.DefaultHTTPIdleTimeout || cfg.WebhookReadTimeout != 0 {
		t.Fatalf("defaults: %v idle %s read %s", err, cfg.HTTPIdleTimeout, cfg.WebhookReadTimeout)
	}
	env := map[string]string{"STAGELY_HTTP_IDLE_TIMEOUT": "5s", "STAGELY_WEBHOOK_READ_TIMEOUT": "3s"}
	cfg, err = config.Load(func(k string) string { return env[k] }, config.Needs{})
	if err != nil || cfg.HTTPIdleTimeout != 5*time.Second || cfg.WebhookReadTimeout != 3*time.Second {
		t.Fatalf("set: %v idle %s read %s", err, cfg.HTTPIdleTimeout, cfg.WebhookReadTimeout)
	}
	env["STAGELY_WEBHOOK_READ_TIMEOUT"] = "soon"
	if _, err := config.Load(func(k string) string { return env[k] }, config.Needs{}); err == nil || !strings.Contains(err.Error(), "STAGELY_WEBHOOK_READ_TIMEOUT") {
		t.Fatalf("bad read timeout: %v", err)
	}
}

func TestLoad_TrustedProxiesTakesCIDRsAndAddresses(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"", "[]"},
		{"172.16.0.0/12", "[172.16.0.0/12]"},
		{" 10.0.0.5 , fd00::/8,192.168.1.7/16", "[10.0.0.5/32 fd00::/8 192.168.0.0/16]"},
		{"::ffff:10.0.0.5", "[10.0.0.5/32]"},
	}
	for _, tc := range cases {
		env := map[string]string{"STAGELY_TRUSTED_PROXIES": tc.in}
		cfg, err := config.Load(func(k string) string { return env[k] }, config.Needs{})
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if got := fmt.Sprint(cfg.TrustedProxies); got != tc.want {
			t.Errorf("%q read as %s, want %s", tc.in, got, tc.want)
		}
	}
}
