package redisurl

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSentinel(t *testing.T) {
	for raw, want := range map[string]struct {
		addrs          []string
		master         string
		db             int
		redisURL       string
		sUser, sPass   string
		tls, sentinelT bool
	}{
		"redis+sentinel://h1:26380,h2,[::1]:26381/mymaster": {
			addrs: []string{"h1:26380", "h2:26379", "[::1]:26381"}, master: "mymaster", redisURL: "redis://10.0.0.1:6379",
		},
		"REDIS+SENTINEL://u:p%40ss@h1/my%20master/3?sentinel_password=s%26p&sentinel_username=su": {
			addrs: []string{"h1:26379"}, master: "my master", db: 3, redisURL: "redis://u:p%40ss@10.0.0.1:6379/3",
			sUser: "su", sPass: "s&p",
		},
		// Ports are written back without leading zeros; an IPv6 zone is
		// decoded (%25 in the URL, as RFC 6874 writes it).
		"redis+sentinel://h1:080,h2:00026379,[fe80::1%25eth0]:26380,[fe80::1%25eth%31],[::1]/m": {
			addrs: []string{"h1:80", "h2:26379", "[fe80::1%eth0]:26380", "[fe80::1%eth1]:26379", "[::1]:26379"}, master: "m", redisURL: "redis://10.0.0.1:6379",
		},
		"redis+sentinel://:pw@h1:1/m": {addrs: []string{"h1:1"}, master: "m", redisURL: "redis://:pw@10.0.0.1:6379"},
		"redis+sentinel://pw@h1/m/":   {addrs: []string{"h1:26379"}, master: "m", redisURL: "redis://pw@10.0.0.1:6379"},
		"rediss+sentinel://h1/m": {
			addrs: []string{"h1:26379"}, master: "m", redisURL: "rediss://10.0.0.1:6379", tls: true, sentinelT: true,
		},
		"rediss+sentinel://h1/m?sentinel_tls=false": {
			addrs: []string{"h1:26379"}, master: "m", redisURL: "rediss://10.0.0.1:6379", tls: true,
		},
		"redis+sentinel://h1/m?sentinel_tls=1": {
			addrs: []string{"h1:26379"}, master: "m", redisURL: "redis://10.0.0.1:6379", sentinelT: true,
		},
	} {
		s, err := ParseSentinel(raw)
		if err != nil {
			t.Errorf("ParseSentinel(%q): %v", raw, err)
			continue
		}
		got := []any{s.Addrs, s.MasterName, s.DB, s.RedisURL("10.0.0.1:6379"), s.SentinelUsername, s.SentinelPassword, s.TLS(), s.SentinelTLS}
		exp := []any{want.addrs, want.master, want.db, want.redisURL, want.sUser, want.sPass, want.tls, want.sentinelT}
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("ParseSentinel(%q) = %v, want %v", raw, got, exp)
		}
	}
}

func TestParseSentinelRejects(t *testing.T) {
	const secret = "Zq9xK7wP"
	for raw, want := range map[string]string{
		"redis+sentinel:///m":                                                        "no sentinel addresses",
		"redis+sentinel://u:" + secret + "@/m":                                       "no sentinel addresses",
		"redis+sentinel://h1,/m":                                                     `sentinel address "": no host`,
		"redis+sentinel://h1:bad/m":                                                  `sentinel address "h1:bad": port must be a number`,
		"redis+sentinel://h1:0/m":                                                    `port must be a number from 1 to 65535`,
		"redis+sentinel://h1:65536/m":                                                `port must be a number from 1 to 65535`,
		"redis+sentinel://[::1/m":                                                    `missing ']'`,
		"redis+sentinel://h1:+80/m":                                                  `sentinel address "h1:+80": port must be a number from 1 to 65535`,
		"redis+sentinel://h1:-1/m":                                                   `port must be a number from 1 to 65535`,
		"redis+sentinel://h1: 80/m":                                                  `port must be a number from 1 to 65535`,
		"redis+sentinel://h1:/m":                                                     `port must be a number from 1 to 65535`,
		"redis+sentinel://h1:0x50/m":                                                 `port must be a number from 1 to 65535`,
		"redis+sentinel://h1:99999999999999999999/m":                                 `port must be a number from 1 to 65535`,
		"redis+sentinel://::1/m":                                                     `sentinel address "::1": bad host (an IPv6 address goes in brackets`,
		"redis+sentinel://[h1]:26379/m":                                              `not an IPv6 address between brackets`,
		"redis+sentinel://[fe80::1%eth0]/m":                                          `write an IPv6 zone as %25zone`,
		"redis+sentinel://[fe80::1%25]/m":                                            `write an IPv6 zone as %25zone`,
		"redis+sentinel://[fe80::1%25e%zz]/m":                                        `bad IPv6 zone`,
		"redis+sentinel://h1,h1,h1/m":                                                `sentinel address "h1": the same sentinel as "h1"`,
		"redis+sentinel://H1:26379,h2,h1/m":                                          `sentinel address "h1": the same sentinel as "H1:26379"`,
		"redis+sentinel://h1:080,h1:80/m":                                            `the same sentinel as "h1:080"`,
		"redis+sentinel://[::1],[0::1]:26379/m":                                      `the same sentinel as "[::1]"`,
		"redis+sentinel://h1":                                                        "no master name",
		"redis+sentinel://h1/":                                                       "no master name",
		"redis+sentinel://h1?sentinel_tls=true":                                      "no master name",
		"redis+sentinel://h1/m/x":                                                    `database "x" must be a number`,
		"redis+sentinel://h1/m/-1":                                                   `database "-1" must be a number`,
		"redis+sentinel://h1/m/0/1":                                                  "path must be /mastername or /mastername/db",
		"redis+sentinel://h1/m?sentinel_pasword=" + secret:                           `unknown parameter "sentinel_pasword"`,
		"redis+sentinel://h1/m?sentinel_tls=maybe":                                   `sentinel_tls="maybe": want true or false`,
		"redis+sentinel://h1/m?sentinel_tls=1&sentinel_tls=0":                        `parameter "sentinel_tls" given twice`,
		"redis+sentinel://u:" + secret[:4] + "/" + secret[4:] + "@h1/m":              malformedSecret,
		"redis+sentinel://u:" + secret[:4] + "?" + secret[4:] + "@h1/m":              malformedSecret,
		"redis+sentinel://u:" + secret[:4] + "#" + secret[4:] + "@h1/m":              malformedSecret,
		"redis+sentinel://u:" + secret[:4] + "@" + secret[4:] + "@h1/m":              malformedSecret,
		"redis+sentinel://h1/m?sentinel_password=" + secret[:4] + "@" + secret[4:]:   malformedSecret,
		"redis+sentinel://h1/m?sentinel_password=" + secret[:4] + "&" + secret[4:]:   "unknown parameter after sentinel_password (not shown)",
		"redis+sentinel://h1/m?sentinel_password=" + secret[:4] + "%zz" + secret[4:]: malformedSecret,
		"redis+sentinel://u:" + secret + "%zz@h1/m":                                  malformedSecret,
		"redis+sentinel://@h1/m":                                                     "empty user info",
		"redis+sentinel:h1/m":                                                        "scheme must be",
	} {
		_, err := ParseSentinel(raw)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSentinel(%q) = %v, want it to contain %q", raw, err, want)
			continue
		}
		for i := 0; i+4 <= len(secret); i++ {
			if strings.Contains(err.Error(), secret[i:i+4]) {
				t.Errorf("ParseSentinel(%q) shows %q of the password: %v", raw, secret[i:i+4], err)
				break
			}
		}
	}
}

func TestRedactSentinel(t *testing.T) {
	for raw, want := range map[string]string{
		"redis+sentinel://h1:26379,h2/m/1":                          "redis+sentinel://h1:26379,h2/m/1",
		"redis+sentinel://u:secret@h1/m":                            "redis+sentinel://u:xxxxx@h1/m",
		"redis+sentinel://secret@h1/m":                              "redis+sentinel://xxxxx@h1/m",
		"redis+sentinel://h1/m?sentinel_username=su&sentinel_tls=1": "redis+sentinel://h1/m?sentinel_username=su&sentinel_tls=1",
		"redis+sentinel://h1/m?sentinel_password=secret&x=secret2":  "redis+sentinel://h1/m?sentinel_password=xxxxx&xxxxx",
		"redis+sentinel://h1/m?x=secret&sentinel_password=secret":   "redis+sentinel://h1/m?x=xxxxx&sentinel_password=xxxxx",
		"rediss+sentinel://u:se/cret@h1/m?sentinel_password=secret": "rediss+sentinel://xxxxx",
		"redis+sentinel://h1/m?sentinel_password=se@cret":           "redis+sentinel://xxxxx",
		"redis+sentinel:u:secret@h1/m":                              "redis+sentinel:xxxxx",
	} {
		if got := RedactSentinel(raw); got != want {
			t.Errorf("RedactSentinel(%q) = %q, want %q", raw, got, want)
		}
		if got := Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}
