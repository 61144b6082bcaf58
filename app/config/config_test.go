package config_test

import (
	"fmt"
	"testing"

	"github.com/stagely/stagely/app/config"
)

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
