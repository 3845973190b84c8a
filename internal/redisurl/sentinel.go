package redisurl

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultSentinelPort is the port of a sentinel address written without
// one, as redis-sentinel listens on by default.
const DefaultSentinelPort = "26379"

// The query parameters a Sentinel URL may carry. Everything else is
// refused, so that a typo is an error at Open rather than a setting that
// silently does nothing.
const (
	paramSentinelUsername = "sentinel_username"
	paramSentinelPassword = "sentinel_password"
	paramSentinelTLS      = "sentinel_tls"
)

// malformedSecret is the problem of a Sentinel URL whose user info or
// sentinel_password is wrong in a way that cannot be shown without
// showing the password.
const malformedSecret = "the user info or sentinel_password (not shown) is malformed: percent-encode @ : / ? # % & in them"

// Sentinel is a parsed Sentinel URL:
//
//	redis+sentinel://[user:password@]host1[:26379][,host2[:26379]...]/mastername[/db][?sentinel_username=...&sentinel_password=...&sentinel_tls=...]
//
// The same shape as Harbor's and python redis-sentinel-url's, Lettuce's
// redis-sentinel:// with the master name in the path rather than the
// fragment. The user info is Redis's credentials, written and read as in
// a redis:// URL (a lone user name is the password, as redigo and
// redis-cli read it); the sentinels have their own, in the query.
// rediss+sentinel:// dials Redis with TLS, and the sentinels too unless
// sentinel_tls=false.
type Sentinel struct {
	Scheme     string   // "redis+sentinel" or "rediss+sentinel", lower case
	Addrs      []string // the sentinels, host:port, each once (IPv6 in brackets, its zone decoded; the port without leading zeros)
	MasterName string
	DB         int
	User       *url.Userinfo // Redis's credentials; nil when none

	SentinelUsername, SentinelPassword string
	SentinelTLS                        bool // dial the sentinels with TLS
}

// IsSentinel says whether rawURL has a Sentinel scheme, so that it is read
// by ParseSentinel rather than as a redis:// URL.
func IsSentinel(rawURL string) bool {
	scheme, _, ok := strings.Cut(rawURL, ":")
	return ok && sentinelScheme(scheme)
}

func sentinelScheme(s string) bool {
	switch strings.ToLower(s) {
	case "redis+sentinel", "rediss+sentinel":
		return true
	}
	return false
}

// TLS says whether Redis itself is dialled with TLS.
func (s *Sentinel) TLS() bool { return s.Scheme == "rediss+sentinel" }

// RedisURL is the redis:// (or rediss://) URL of the server at addr, with
// the Redis credentials and database of s: what the store dials once the
// sentinels have named the master.
func (s *Sentinel) RedisURL(addr string) string {
	u := url.URL{Scheme: "redis", Host: addr, User: s.User}
	if s.TLS() {
		u.Scheme = "rediss"
	}
	if s.DB != 0 {
		u.Path = "/" + strconv.Itoa(s.DB)
	}
	return u.String()
}

// ParseSentinel reads a Sentinel URL (see Sentinel). Its errors show the
// URL redacted (RedactSentinel) and never a piece of a password.
func ParseSentinel(rawURL string) (*Sentinel, error) {
	s, err := parseSentinel(rawURL)
	if err != nil {
		return nil, fmt.Errorf("invalid redis sentinel URL %q: %w", RedactSentinel(rawURL), err)
	}
	return s, nil
}

func parseSentinel(rawURL string) (*Sentinel, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || !sentinelScheme(scheme) {
		return nil, errors.New("scheme must be redis+sentinel:// or rediss+sentinel://")
	}
	s := &Sentinel{Scheme: strings.ToLower(scheme), SentinelTLS: strings.EqualFold(scheme, "rediss+sentinel")}
	userInfo, hosts, path, query, err := splitSentinel(rest)
	if err != nil {
		return nil, err
	}
	if userInfo != "" {
		// Decoded as url.Parse decodes a redis:// URL's, which is how the
		// URL handed to the ordinary dial reads it back.
		u, err := url.Parse("redis://" + userInfo + "@host")
		if err != nil || u.User == nil {
			return nil, errors.New(malformedSecret)
		}
		s.User = u.User
	}
	if s.Addrs, err = sentinelAddrs(hosts); err != nil {
		return nil, err
	}
	if s.MasterName, s.DB, err = masterPath(path); err != nil {
		return nil, err
	}
	if err := s.readQuery(query); err != nil {
		return nil, err
	}
	return s, nil
}

// splitSentinel cuts what follows "scheme://" into its parts. The user
// info ends at the only '@', which must come before the path: an '@'
// anywhere else is part of a password that was not percent-encoded.
func splitSentinel(rest string) (userInfo, hosts, path, query string, err error) {
	if strings.ContainsAny(rest, "#") {
		// Not "fragment not allowed": an unescaped '#' is more likely in a
		// password than a fragment in a Redis URL.
		return "", "", "", "", errors.New(malformedSecret)
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	if n := strings.Count(rest, "@"); n > 1 || (n == 1 && strings.Index(rest, "@") > end) {
		return "", "", "", "", errors.New(malformedSecret)
	}
	authority := rest[:end]
	rest = rest[end:]
	if i := strings.Index(authority, "@"); i >= 0 {
		userInfo, authority = authority[:i], authority[i+1:]
		if userInfo == "" {
			return "", "", "", "", errors.New("empty user info before '@'")
		}
	}
	path, query, _ = strings.Cut(rest, "?")
	return userInfo, authority, path, query, nil
}

// sentinelAddrs reads the sentinels' comma-separated host[:port] list
// (see hostList), 26379 where a port is left out.
func sentinelAddrs(hosts string) ([]string, error) {
	if hosts == "" {
		return nil, errors.New("no sentinel addresses: write redis+sentinel://host1:26379,host2:26379/mastername")
	}
	return hostList(hosts, DefaultSentinelPort, "sentinel")
}

// hostList reads a comma-separated host[:port] list; what names one
// ("sentinel", "cluster node") in errors. A port is decimal digits (no
// sign), 1 to 65535, written back without leading zeros; an IPv6 literal
// goes in brackets, its zone percent-encoded as in a URL
// ([fe80::1%25eth0], RFC 6874) and decoded here. The same address given
// twice (h1,h1:26379) is refused rather than used twice: it is most
// likely a mistake in the list, and a silent dedupe would hide it.
func hostList(hosts, defaultPort, what string) ([]string, error) {
	var addrs []string
	seen := map[string]string{} // canonical address -> as written
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := hostPort(h, defaultPort)
		if err != nil {
			return nil, fmt.Errorf("%s address %q: %w", what, h, err)
		}
		key := strings.ToLower(host)
		if ip := net.ParseIP(host); ip != nil {
			key = ip.String() // ::1 and 0::1 are one address
		}
		key = net.JoinHostPort(key, port)
		if first, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s address %q: the same %s as %q; give each once", what, h, what, first)
		}
		seen[key] = h
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	return addrs, nil
}

// hostPort splits one address into its host (an IPv6 literal without
// brackets, its zone decoded) and its port (canonical; defaultPort when
// none is written).
func hostPort(h, defaultPort string) (host, port string, err error) {
	host, port = h, defaultPort
	if strings.HasPrefix(h, "[") { // [::1] or [::1]:26379
		i := strings.Index(h, "]")
		if i < 0 {
			return "", "", errors.New("missing ']'")
		}
		host = h[1:i]
		if tail := h[i+1:]; tail != "" {
			if !strings.HasPrefix(tail, ":") {
				return "", "", errors.New("expected ':port' after ']'")
			}
			port = tail[1:]
		}
		if host, err = ipv6Literal(host); err != nil {
			return "", "", err
		}
	} else {
		if i := strings.LastIndex(h, ":"); i >= 0 {
			host, port = h[:i], h[i+1:]
		}
		if host == "" {
			return "", "", errors.New("no host")
		}
		if strings.ContainsAny(host, "[]:% ") {
			return "", "", errors.New("bad host (an IPv6 address goes in brackets: [::1]:" + defaultPort + ")")
		}
	}
	if port == "" || strings.Trim(port, "0123456789") != "" {
		return "", "", errors.New("port must be a number from 1 to 65535")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", "", errors.New("port must be a number from 1 to 65535")
	}
	return host, strconv.Itoa(p), nil
}

// ipv6Literal checks what stood between brackets: an IPv6 address,
// maybe with a zone written %25zone, returned decoded (fe80::1%eth0).
func ipv6Literal(s string) (string, error) {
	addr, zone, hasZone := strings.Cut(s, "%")
	if ip := net.ParseIP(addr); ip == nil || !strings.Contains(addr, ":") {
		return "", errors.New("not an IPv6 address between brackets")
	}
	if !hasZone {
		return addr, nil
	}
	if !strings.HasPrefix(zone, "25") || len(zone) == 2 {
		return "", errors.New("write an IPv6 zone as %25zone ([fe80::1%25eth0])")
	}
	z, err := url.PathUnescape(zone[2:])
	if err != nil || z == "" || strings.ContainsAny(z, "%[]/ ") {
		return "", errors.New("bad IPv6 zone")
	}
	return addr + "%" + z, nil
}

// masterPath reads "/mastername" or "/mastername/db".
func masterPath(path string) (name string, db int, err error) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if path == "" || segs[0] == "" {
		return "", 0, errors.New("no master name: write redis+sentinel://host:26379/mastername")
	}
	if len(segs) > 2 {
		return "", 0, errors.New("path must be /mastername or /mastername/db")
	}
	if name, err = url.PathUnescape(segs[0]); err != nil {
		return "", 0, fmt.Errorf("master name: %w", err)
	}
	if len(segs) == 2 && segs[1] != "" { // "/m/" is database 0, as redigo reads "/"
		if db, err = strconv.Atoi(segs[1]); err != nil || db < 0 {
			return "", 0, fmt.Errorf("database %q must be a number of 0 or more", segs[1])
		}
	}
	return name, db, nil
}

func (s *Sentinel) readQuery(query string) error {
	if query == "" {
		return nil
	}
	afterPassword := false
	seen := map[string]bool{}
	for _, kv := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		key, err1 := url.QueryUnescape(k)
		val, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			if k == paramSentinelPassword || afterPassword {
				return errors.New(malformedSecret)
			}
			return fmt.Errorf("parameter %q: bad escape", k)
		}
		if seen[key] {
			return fmt.Errorf("parameter %q given twice", key)
		}
		seen[key] = true
		switch key {
		case paramSentinelUsername:
			s.SentinelUsername = val
		case paramSentinelPassword:
			s.SentinelPassword = val
		case paramSentinelTLS:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return fmt.Errorf("parameter %s=%q: want true or false", key, val)
			}
			s.SentinelTLS = b
		default:
			if afterPassword {
				// Most likely the rest of a password with an unescaped
				// '&': do not show it.
				return errors.New("unknown parameter after sentinel_password (not shown): percent-encode & in passwords")
			}
			return fmt.Errorf("unknown parameter %q (known: %s, %s, %s)", key, paramSentinelUsername, paramSentinelPassword, paramSentinelTLS)
		}
		afterPassword = key == paramSentinelPassword
	}
	return nil
}

// RedactSentinel returns a Sentinel URL fit to print: the Redis password
// (or a lone user name, which is one) and the value of sentinel_password
// replaced by Hidden. A URL whose user info and query cannot be told apart
// (an unescaped '@', '#' or '?' in a password) shows only its scheme.
func RedactSentinel(rawURL string) string {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		scheme, rest, _ = strings.Cut(rawURL, ":")
		return scheme + ":" + hideAll(rest)
	}
	userInfo, hosts, path, query, err := splitSentinel(rest)
	if err != nil {
		return scheme + "://" + hideAll(rest)
	}
	var b strings.Builder
	b.WriteString(scheme + "://")
	if userInfo != "" {
		user, _, hasPassword := strings.Cut(userInfo, ":")
		if hasPassword {
			b.WriteString(user + ":")
		}
		b.WriteString(Hidden + "@")
	}
	b.WriteString(hosts + path)
	if query != "" {
		parts := strings.Split(query, "&")
		afterPassword := false
		for i, kv := range parts {
			k, _, _ := strings.Cut(kv, "=")
			switch {
			case k == paramSentinelUsername || k == paramSentinelTLS:
			case k == paramSentinelPassword || !afterPassword:
				// Any other value may be (a piece of) a password.
				parts[i] = k + "=" + Hidden
			default:
				// Most likely the rest of a password with an unescaped '&'.
				parts[i] = Hidden
			}
			afterPassword = k == paramSentinelPassword || (afterPassword && parts[i] == Hidden)
		}
		b.WriteString("?" + strings.Join(parts, "&"))
	}
	return b.String()
}

// hideAll hides all that follows a scheme: it is a URL whose user info
// or query could not be told apart, so a password may be anywhere in it.
func hideAll(string) string { return Hidden }
