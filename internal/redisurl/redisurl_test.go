package redisurl

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"redis://localhost:6379":                   "redis://localhost:6379",
		"redis://u:secret@host:6379/1":             "redis://u:xxxxx@host:6379/1",
		"rediss://:secret@host":                    "rediss://:xxxxx@host",
		"redis://secret@host:6379":                 "redis://xxxxx@host:6379", // redigo sends a lone user name as the password
		"redis://u:se%40cr%2Fet@host":              "redis://u:xxxxx@host",
		"redis://u:secret@host:bad":                "redis://xxxxx@host:bad",
		"redis://u:se/cret@host":                   "redis://xxxxx@host",
		"redis://u:se?cret@host":                   "redis://xxxxx@host",
		"redis://u:se@cret@host":                   "redis://xxxxx@host",
		"redis://u:1234/5@host:6379/0":             "redis://xxxxx@host:6379/0",
		"REDIS://u:secret@host:bad":                "REDIS://xxxxx@host:bad",
		"redis:u:secret@host":                      "redis:xxxxx@host",
		"u:secret@host:6379":                       "xxxxx@host:6379",
		"http://u:secret@host":                     "http://u:xxxxx@host",
		"http://u:secret@host:bad":                 "xxxxx@host:bad",
		"":                                         "",
		"@":                                        "xxxxx@",
		"redis://@":                                "redis://xxxxx@",
		"redis://host:6379/0?x=1#frag":             "redis://host:6379/0?x=1#frag",
		"valkeys://u:secret@host:6379/0?a=b@c#d@e": "valkeys://xxxxx@e",
	} {
		if got := Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, ok := range []string{
		"redis://localhost:6379", "rediss://u:p@host:6380/2", "valkey://host", "valkeys://host/",
		"redis://u:se%2Fcr%40et@host:6379/0", "redis://:p@host", "redis://host/foo/3", // redigo reads the last segment
	} {
		if err := Check(ok); err != nil {
			t.Errorf("Check(%q) = %v, want nil", ok, err)
		}
	}
	for raw, want := range map[string]string{
		"redis://u:secret@host:bad":                    `invalid redis URL "redis://xxxxx@host:bad": invalid port ":bad" after host`,
		"redis://u:se/cret@host:6379":                  `invalid redis URL "redis://xxxxx@host:6379": the user name or password (not shown) is malformed`,
		"redis://u:1234/5@host:6379/0":                 `invalid redis URL "redis://xxxxx@host:6379/0": the user name or password (not shown) is malformed`,
		"redis://u:1234?5@host:6379":                   `the user name or password (not shown) is malformed`,
		"redis://u:1234#5@host:6379":                   `the user name or password (not shown) is malformed`,
		"http://u:secret@host":                         `invalid redis URL "http://u:xxxxx@host": scheme must be`,
		"redis:u:secret@host":                          `invalid redis URL "redis:xxxxx@host": write it as redis://host:port`,
		"redis://u:secret@host/x":                      `invalid redis URL "redis://u:xxxxx@host/x": path must be a database number`,
		"redis://u:secret@host/9999999999999999999999": `database "9999999999999999999999"`,
		"redis://u:sec%zzret@host":                     `invalid redis URL "redis://xxxxx@host": the user name or password (not shown) is malformed`,
		"redis://u:secret@[::1":                        `missing ']' in host`,
	} {
		err := Check(raw)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(%q) = %v, want it to contain %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Check(%q) shows the password: %v", raw, err)
		}
	}
}
