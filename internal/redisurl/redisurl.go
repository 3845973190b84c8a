// Package redisurl checks Redis URLs as redigo reads them, and prints them
// without their password, for errors and logs.
package redisurl

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Hidden is what a password (or a user info that cannot be told apart from
// one) is replaced with, as url.URL.Redacted writes it.
const Hidden = "xxxxx"

// malformedUserInfo is the problem of a URL whose user info is wrong in a
// way that cannot be shown without showing the password.
const malformedUserInfo = "the user name or password (not shown) is malformed: percent-encode @ : / ? # % in them"

// Redact returns rawURL fit to print: its password replaced by Hidden. A
// Sentinel URL is redacted by RedactSentinel.
//
// A well-formed URL keeps its user name (redis://user:xxxxx@host:6379), as
// url.URL.Redacted writes it. A lone user name (redis://secret@host) is
// hidden too: redigo, like redis-cli, sends it as the password. Any other
// URL that holds an '@' (one that does not parse, or one whose password has
// unescaped reserved characters, so that part of it was read as the host,
// the port, the path or the query) loses everything from after its scheme
// up to its last '@', since the password may be anywhere in there.
func Redact(rawURL string) string {
	if IsSentinel(rawURL) || IsCluster(rawURL) { // a host list, and passwords may be in the query too
		return RedactSentinel(rawURL)
	}
	if !strings.Contains(rawURL, "@") {
		return rawURL
	}
	if u, err := url.Parse(rawURL); err == nil && userInfoOnly(rawURL, u) {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
		ru := *u
		ru.User = url.User(Hidden)
		return ru.String()
	}
	return byHand(rawURL)
}

// userInfoOnly says whether the one '@' of rawURL is the end of u's user
// info, so that the password, if any, is all in u.User and nowhere else.
func userInfoOnly(rawURL string, u *url.URL) bool {
	return u.Opaque == "" && u.User != nil && strings.Count(rawURL, "@") == 1
}

// byHand hides everything between the scheme (when it is one a Redis URL
// may have) and the last '@'.
func byHand(rawURL string) string {
	at := strings.LastIndex(rawURL, "@")
	start := 0
	if scheme, rest, ok := strings.Cut(rawURL, ":"); ok && knownScheme(scheme) {
		start = len(scheme) + 1 + (len(rest) - len(strings.TrimLeft(rest, "/")))
	}
	start = min(start, at)
	return rawURL[:start] + Hidden + rawURL[at:]
}

func knownScheme(s string) bool {
	switch strings.ToLower(s) {
	case "redis", "rediss", "valkey", "valkeys":
		return true
	}
	return false
}

var dbPathRE = regexp.MustCompile(`/(\d*)\z`) // as redigo's

// Check rejects the URLs that redis.DialURLContext rejects (same schemes,
// same database path rule), and those where an unescaped character of the
// password made an '@' land outside the user info (then part of the
// password would be dialled as the host or port). Its errors show the URL
// redacted, and never url.Parse's own error, which quotes the whole URL and
// whose details (a port, an escape) can be pieces of a password.
func Check(rawURL string) error {
	shown := Redact(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("invalid redis URL %q: %s", shown, parseProblem(shown))
	}
	if !knownScheme(u.Scheme) {
		return fmt.Errorf("invalid redis URL %q: scheme must be redis://, rediss://, valkey:// or valkeys:// (redis+sentinel:// for Sentinel, redis+cluster:// for Redis Cluster)", shown)
	}
	if u.Opaque != "" {
		return fmt.Errorf("invalid redis URL %q: write it as redis://host:port", shown)
	}
	if strings.Contains(rawURL, "@") && !userInfoOnly(rawURL, u) {
		return fmt.Errorf("invalid redis URL %q: %s", shown, malformedUserInfo)
	}
	if u.Path != "" {
		m := dbPathRE.FindStringSubmatch(u.Path)
		if m == nil {
			return fmt.Errorf("invalid redis URL %q: path must be a database number", shown)
		}
		if _, err := strconv.Atoi(m[1]); m[1] != "" && err != nil {
			return fmt.Errorf("invalid redis URL %q: database %q: %w", shown, m[1], err)
		}
	}
	return nil
}

// parseProblem says why a URL does not parse, asking url.Parse about its
// redacted text only. When that text parses, what failed was the part that
// was hidden.
func parseProblem(shown string) string {
	_, err := url.Parse(shown)
	var uerr *url.Error
	switch {
	case errors.As(err, &uerr):
		return uerr.Err.Error()
	case err != nil:
		return err.Error()
	}
	return malformedUserInfo
}
