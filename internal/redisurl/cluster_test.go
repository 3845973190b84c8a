package redisurl

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCluster(t *testing.T) {
	for raw, want := range map[string]struct {
		addrs   []string
		nodeURL string
		tls     bool
	}{
		"redis+cluster://h1:7000,h2,[::1]:7001":     {addrs: []string{"h1:7000", "h2:6379", "[::1]:7001"}, nodeURL: "redis://10.0.0.1:7002"},
		"REDIS+CLUSTER://u:p%40ss@h1:07000/":        {addrs: []string{"h1:7000"}, nodeURL: "redis://u:p%40ss@10.0.0.1:7002"},
		"redis+cluster://pw@h1/0":                   {addrs: []string{"h1:6379"}, nodeURL: "redis://pw@10.0.0.1:7002"},
		"rediss+cluster://:pw@h1:7000,h2:7000":      {addrs: []string{"h1:7000", "h2:7000"}, nodeURL: "rediss://:pw@10.0.0.1:7002", tls: true},
		"redis+cluster://[fe80::1%25eth0]:7000,h:1": {addrs: []string{"[fe80::1%eth0]:7000", "h:1"}, nodeURL: "redis://10.0.0.1:7002"},
	} {
		c, err := ParseCluster(raw)
		if err != nil {
			t.Errorf("ParseCluster(%q): %v", raw, err)
			continue
		}
		got := []any{c.Addrs, c.NodeURL("10.0.0.1:7002"), c.TLS()}
		exp := []any{want.addrs, want.nodeURL, want.tls}
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("ParseCluster(%q) = %v, want %v", raw, got, exp)
		}
		if !IsCluster(raw) || IsSentinel(raw) {
			t.Errorf("IsCluster(%q) = false, or IsSentinel true", raw)
		}
	}
}

func TestParseClusterRejects(t *testing.T) {
	const secret = "Zq9xK7wP"
	for raw, want := range map[string]string{
		"redis+cluster://":                              "no node addresses",
		"redis+cluster://u:" + secret + "@":             "no node addresses",
		"redis+cluster://h1,":                           `cluster node address "": no host`,
		"redis+cluster://h1:7000,h1:7000":               "the same cluster node",
		"redis+cluster://h1:0":                          "port must be a number from 1 to 65535",
		"redis+cluster://h1/1":                          "only database 0",
		"redis+cluster://h1?x=1":                        "no query parameters",
		"redis+cluster://u:" + secret + "@x@h1":         "malformed",
		"redis+cluster://u:" + secret + "#x@h1":         "malformed",
		"redis://h1":                                    "scheme must be redis+cluster://",
		"redis+cluster://u:" + secret + "@h1:7000/db/2": "only database 0",
	} {
		_, err := ParseCluster(raw)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCluster(%q) = %v, want an error saying %q", raw, err, want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("ParseCluster(%q): the error shows the password: %v", raw, err)
		}
	}
}

func TestRedactCluster(t *testing.T) {
	got := Redact("redis+cluster://u:secret@h1:7000,h2:7001")
	if want := "redis+cluster://u:" + Hidden + "@h1:7000,h2:7001"; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
}
