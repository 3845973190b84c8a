package pikkuredis_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisserver"
)

// Security: TLS (rediss://), Redis 7 ACL users restricted to a prefix, and
// passwords kept out of every error. Each test runs a redis-server of its
// own: ACL users and TLS ports are never set up on the shared test server.

// openModes are the two ways a store opened from a URL reaches Redis.
var openModes = map[string][]pikkuredis.Option{
	"auto-pipelined":          nil,
	"WithoutAutoPipelining()": {pikkuredis.WithoutAutoPipelining()},
}

// randomPrefix is a key prefix for a server of the test's own (no clean-up
// needed: the server goes with the test).
func randomPrefix(t testing.TB) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "sec-" + hex.EncodeToString(b)
}

// openSessions opens a SessionStore from url with opts, closed when the
// test ends.
func openSessions(t testing.TB, url string, opts ...pikkuredis.Option) *pikkuredis.SessionStore {
	t.Helper()
	ss, err := pikkuredis.OpenSessionStore(url, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { ss.Close() })
	return ss
}

// openBoth opens both stores from url with opts, closed when the test ends.
func openBoth(t testing.TB, url string, opts ...pikkuredis.Option) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
	t.Helper()
	cs, err := pikkuredis.OpenChannelStore(url, opts...)
	require.NoError(t, err)
	hs, err := pikkuredis.OpenEventHubStore(url, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { cs.Close(); hs.Close() })
	return cs, hs
}

// --- TLS ---

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	require.NoError(t, err)
	return n
}

// pool is a root pool holding only this CA.
func (ca testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// serverFiles issues a server certificate for the given names and
// addresses and writes it, its key and the CA into dir.
func (ca testCA) serverFiles(t testing.TB, dir string, dnsNames []string, ips []net.IP) redisserver.TLS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "pikkuredis test redis-server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	files := redisserver.TLS{
		CertFile: filepath.Join(dir, "server.crt"),
		KeyFile:  filepath.Join(dir, "server.key"),
		CAFile:   filepath.Join(dir, "ca.crt"),
	}
	require.NoError(t, os.WriteFile(files.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(files.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	require.NoError(t, os.WriteFile(files.CAFile, ca.pem, 0o600))
	return files
}

// tlsRedis starts a redis-server of the test's own with a TLS port whose
// certificate, signed by a CA made here, names 127.0.0.1 (and localhost).
func tlsRedis(t testing.TB) (*redisserver.Server, testCA) {
	t.Helper()
	ca := newTestCA(t, "pikkuredis test CA")
	files := ca.serverFiles(t, t.TempDir(), []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	return startTLS(t, files), ca
}

func startTLS(t testing.TB, files redisserver.TLS) *redisserver.Server {
	t.Helper()
	return ownServer(t, func() (*redisserver.Server, error) { return redisserver.StartTLS(files) })
}

// roundTrip adds a channel, subscribes it, reads both back, checks on the
// plain port that they are on that server, and removes the channel.
func roundTrip(t *testing.T, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, admin redis.Conn, prefix string) {
	t.Helper()
	ctx := ctxT(t)
	require.NoError(t, cs.Init(ctx))
	require.NoError(t, hs.Init(ctx))
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat", OpeningData: map[string]any{"room": "lobby"}}))
	ok, err := hs.Subscribe(ctx, "news", "c1")
	require.NoError(t, err)
	assert.True(t, ok)

	got, err := cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "chat", got.ChannelName)
	assert.JSONEq(t, `{"room":"lobby"}`, string(got.OpeningData))
	ids, err := hs.GetChannelIDsForTopic(ctx, "news")
	require.NoError(t, err)
	assert.Equal(t, []string{"c1"}, ids)
	name, err := redis.String(admin.Do("HGET", prefix+":channel:c1", "channelName"))
	require.NoError(t, err, "the channel is on the server behind the TLS port")
	assert.Equal(t, "chat", name)

	require.NoError(t, cs.RemoveChannels(ctx, []string{"c1"}))
	_, err = cs.GetChannelAndSession(ctx, "c1")
	assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
	ids, err = hs.GetChannelIDsForTopic(ctx, "news")
	require.NoError(t, err)
	assert.Empty(t, ids)
	n, err := redis.Int(admin.Do("EXISTS", prefix+":channel:c1", prefix+":subs:c1", prefix+":topic:news"))
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestTLSRoundTrip(t *testing.T) {
	srv, ca := tlsRedis(t)
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	for mode, opts := range openModes {
		t.Run(mode, func(t *testing.T) {
			prefix := randomPrefix(t)
			cs, hs := openBoth(t, srv.TLSURL, append([]pikkuredis.Option{
				pikkuredis.WithKeyPrefix(prefix),
				pikkuredis.WithDialOptions(redis.DialTLSConfig(&tls.Config{RootCAs: ca.pool()})),
			}, opts...)...)
			roundTrip(t, cs, hs, admin, prefix)
		})
	}
}

// TestTLSWrongCAIsAClearError: a store that trusts another CA fails every
// call at once with the x509 error, wrapped as a failed dial, and writes
// nothing.
func TestTLSWrongCAIsAClearError(t *testing.T) {
	srv, _ := tlsRedis(t)
	other := newTestCA(t, "some other CA")
	admin := dialURL(t, srv.URL)
	defer admin.Close()
	for mode, opts := range openModes {
		t.Run(mode, func(t *testing.T) {
			prefix := randomPrefix(t)
			cs, hs := openBoth(t, srv.TLSURL, append([]pikkuredis.Option{
				pikkuredis.WithKeyPrefix(prefix),
				pikkuredis.WithDialOptions(redis.DialTLSConfig(&tls.Config{RootCAs: other.pool()})),
			}, opts...)...)
			// A deadline far beyond a handshake, so that a hang would show
			// as DeadlineExceeded rather than as a stuck test.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			calls := map[string]func() error{
				"ChannelStore.Init":  func() error { return cs.Init(ctx) },
				"EventHubStore.Init": func() error { return hs.Init(ctx) },
				"AddChannel":         func() error { return cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"}) },
				"Subscribe":          func() error { _, err := hs.Subscribe(ctx, "news", "c1"); return err },
			}
			for name, call := range calls {
				err := call()
				require.Error(t, err, name)
				assert.NotErrorIs(t, err, context.DeadlineExceeded, name)
				var unknown x509.UnknownAuthorityError
				assert.ErrorAs(t, err, &unknown, name)
				assert.Contains(t, err.Error(), "connect to redis: ", name)
				assert.Contains(t, err.Error(), "certificate signed by unknown authority", name)
				assert.True(t, strings.HasPrefix(err.Error(), "pikkuredis: "), "%s: %v", name, err)
			}
			keys, err := redis.Strings(admin.Do("KEYS", prefix+":*"))
			require.NoError(t, err)
			assert.Empty(t, keys)

			// The scheme decides: on a redis:// URL the same TLS config
			// is ignored, and the plain port answers.
			plain, err := pikkuredis.OpenChannelStore(srv.URL, append([]pikkuredis.Option{
				pikkuredis.WithDialOptions(redis.DialTLSConfig(&tls.Config{RootCAs: other.pool()})),
			}, opts...)...)
			require.NoError(t, err)
			defer plain.Close()
			assert.NoError(t, plain.Init(ctx))
		})
	}
}

// TestTLSServerNameIsTheURLHost: redigo checks the certificate against the
// URL's host, so rediss://127.0.0.1 needs 127.0.0.1 among the certificate's
// IP addresses; tls.Config.ServerName overrides it.
func TestTLSServerNameIsTheURLHost(t *testing.T) {
	ca := newTestCA(t, "pikkuredis test CA")
	srv := startTLS(t, ca.serverFiles(t, t.TempDir(), []string{"localhost"}, nil)) // no IP address
	ctx := ctxT(t)

	cs, err := pikkuredis.OpenChannelStore(srv.TLSURL,
		pikkuredis.WithDialOptions(redis.DialTLSConfig(&tls.Config{RootCAs: ca.pool()})))
	require.NoError(t, err)
	defer cs.Close()
	err = cs.Init(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "127.0.0.1")
	var host x509.HostnameError
	assert.ErrorAs(t, err, &host)

	cs2, err := pikkuredis.OpenChannelStore(srv.TLSURL,
		pikkuredis.WithDialOptions(redis.DialTLSConfig(&tls.Config{RootCAs: ca.pool(), ServerName: "localhost"})))
	require.NoError(t, err)
	defer cs2.Close()
	assert.NoError(t, cs2.Init(ctx))
}

// --- ACL users ---

// readmeACLLine returns the ACL SETUSER line of the "TLS and ACL users"
// section of docs/connections.md, placeholders filled in, split into arguments.
func readmeACLLine(t *testing.T, user, password, prefix string) []string {
	t.Helper()
	text := docText(t, connectionsDoc)
	i := strings.Index(text, "\n### TLS and ACL users\n")
	require.GreaterOrEqual(t, i, 0, "%s has a section \"### TLS and ACL users\"", connectionsDoc)
	section, _, _ := strings.Cut(text[i+1:], "\n## ")
	section, _, _ = strings.Cut(section[4:], "\n### ")
	lines := regexp.MustCompile(`(?m)^ACL SETUSER .*$`).FindAllString(section, -1)
	require.Len(t, lines, 1, "one ACL SETUSER line in the section of %s", connectionsDoc)
	line := strings.NewReplacer("{user}", user, "{password}", password, "{prefix}", prefix).Replace(lines[0])
	require.NotContains(t, line, "{", "every placeholder filled: %s", lines[0])
	return strings.Fields(line)
}

// TestReadmeACLLineIsLeastPrivilege keeps the line from growing rights:
// every command it grants is one the stores send (or will, for leases),
// keys are its prefix only, pub/sub channels none.
func TestReadmeACLLineIsLeastPrivilege(t *testing.T) {
	args := readmeACLLine(t, "u", "pw", "p")
	require.Equal(t, []string{"ACL", "SETUSER", "u"}, args[:3])
	rules := args[3:]
	var granted []string
	for _, r := range rules {
		switch {
		case strings.HasPrefix(r, "+"):
			granted = append(granted, r[1:])
		case strings.HasPrefix(r, "~"), strings.HasPrefix(r, "%"), strings.HasPrefix(r, "&"):
			assert.Equal(t, "~p:*", r, "the only key (or channel) pattern is the prefix")
		}
	}
	for _, r := range []string{"on", "resetpass", ">pw", "resetkeys", "~p:*", "resetchannels", "-@all"} {
		assert.Contains(t, rules, r)
	}
	assert.Less(t, slices.Index(rules, "resetkeys"), slices.Index(rules, "~p:*"))
	assert.Less(t, slices.Index(rules, "-@all"), slices.Index(rules, "+"+granted[0]), "-@all before any grant")
	want := []string{
		"ping", "hset", "hget", "hmget", "smembers", "sscan", "evalsha", "eval", "script|load", // the stores
		"get", "set", // the SessionStore's Get and Set (its Clear is DEL), and GET in get_channel_with_session.lua
		"sadd", "srem", "scard", "sintercard", "sismember", "del", "exists", "hexists", "hdel", // the scripts
		"zadd", "zrem", "zrangebyscore", "time", // leases
	}
	assert.ElementsMatch(t, want, granted, "no +scan (Repair runs as another user), no bare +script, no categories")
}

// aclRedis starts a redis-server of the test's own with the user of docs/connections.md
// for each tenant (name: prefix), all with password pw.
func aclRedis(t *testing.T, pw string, tenants map[string]string) (*redisserver.Server, redis.Conn) {
	t.Helper()
	srv := ownRedis(t)
	admin := dialURL(t, srv.URL)
	t.Cleanup(func() { admin.Close() })
	for user, prefix := range tenants {
		args := readmeACLLine(t, user, pw, prefix)
		_, err := admin.Do(args[0], toAny(args[1:])...)
		require.NoError(t, err, "%v", args)
	}
	return srv, admin
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// userURL is srv's URL logged in as user.
func userURL(srv *redisserver.Server, user, pw string) string {
	return "redis://" + user + ":" + pw + "@" + srv.Addr
}

// dumpAll returns every key of the server with its DUMP, the exact bytes
// of its value.
func dumpAll(t *testing.T, admin redis.Conn) map[string]string {
	t.Helper()
	out := map[string]string{}
	keys, err := redis.Strings(admin.Do("KEYS", "*"))
	require.NoError(t, err)
	for _, k := range keys {
		d, err := redis.String(admin.Do("DUMP", k))
		require.NoError(t, err)
		out[k] = d
	}
	return out
}

// TestACLUserFromReadme: under the ACL line of docs/connections.md, a tenant's stores do
// everything on their prefix, and nothing at all on another tenant's.
func TestACLUserFromReadme(t *testing.T) {
	const pw = "tenant-pw-4c1e"
	for mode, opts := range openModes {
		t.Run(mode, func(t *testing.T) {
			prefixA, prefixB := randomPrefix(t)+"-a", randomPrefix(t)+"-b"
			srv, admin := aclRedis(t, pw, map[string]string{"tenant-a": prefixA, "tenant-b": prefixB})
			ctx := ctxT(t)

			// Tenant A, on its prefix: every public method.
			optsA := append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefixA)}, opts...)
			cs, hs := openBoth(t, userURL(srv, "tenant-a", pw), optsA...)
			tenantDoesEverything(t, ctx, cs, hs, admin, prefixA)
			ss := openSessions(t, userURL(srv, "tenant-a", pw), optsA...)
			ssTTL := openSessions(t, userURL(srv, "tenant-a", pw), append(optsA, pikkuredis.WithSessionTTL(time.Hour))...)
			tenantSessions(t, ctx, cs, ss, ssTTL, admin, prefixA)

			// Tenant B's data, written by B.
			bcs, bhs := openBoth(t, userURL(srv, "tenant-b", pw), append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefixB)}, opts...)...)
			require.NoError(t, bcs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "b1", ChannelName: "b", OpeningData: map[string]any{"x": 1}}))
			require.NoError(t, bcs.SetUserSession(ctx, "b1", map[string]any{"userId": "ub"}))
			require.NoError(t, bcs.SetPikkuUserID(ctx, "b1", "pb"))
			require.NoError(t, bcs.SetState(ctx, "b1", "s"))
			bss := openSessions(t, userURL(srv, "tenant-b", pw), append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefixB)}, opts...)...)
			require.NoError(t, bss.Set(ctx, "pb", map[string]any{"userId": "pb", "secret": "b-only"}))
			_, err := bhs.Subscribe(ctx, "news", "b1")
			require.NoError(t, err)
			require.NoError(t, bcs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "b2", ChannelName: "b"}))
			_, err = bhs.Subscribe(ctx, "news", "b2")
			require.NoError(t, err)

			// Tenant A, with B's prefix: refused everywhere, nothing written.
			before := dumpAll(t, admin)
			require.NotEmpty(t, before)
			xcs, xhs := openBoth(t, userURL(srv, "tenant-a", pw), append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefixB)}, opts...)...)
			require.NoError(t, xcs.Init(ctx), "Init names no key")
			require.NoError(t, xhs.Init(ctx), "Init names no key")
			xss := openSessions(t, userURL(srv, "tenant-a", pw), append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefixB)}, opts...)...)
			xssTTL := openSessions(t, userURL(srv, "tenant-a", pw), append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefixB), pikkuredis.WithSessionTTL(time.Hour)}, opts...)...)
			require.NoError(t, xss.Init(ctx), "Init names no key")
			calls := everyKeyedCall(ctx, xcs, xhs, "b1", "news")
			maps.Copy(calls, everySessionCall(ctx, xss, xssTTL, "pb"))
			for name, call := range calls {
				err := call()
				require.Error(t, err, name)
				assert.Contains(t, err.Error(), "NOPERM", name)
				assert.True(t, strings.HasPrefix(err.Error(), "pikkuredis: "), "%s: %v", name, err)
				assert.NotContains(t, err.Error(), "b-only", name)
			}
			assert.Equal(t, before, dumpAll(t, admin), "no key changed, none added")

			// Inside Lua: A's own keys, but B's prefix for the topic keys
			// the script builds. Redis checks the script's SREM on B's
			// topic: refused (Redis says it in its own words there, not
			// NOPERM), and the script stops before any write.
			require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "b1", ChannelName: "a"}))
			_, err = hs.Subscribe(ctx, "news", "b1")
			require.NoError(t, err)
			require.NoError(t, cs.SetPikkuUserID(ctx, "b1", "pb"))
			before = dumpAll(t, admin)
			raw := dialURL(t, userURL(srv, "tenant-a", pw))
			defer raw.Close()
			_, err = raw.Do("EVAL", readScript(t, "remove_channels"), 2,
				prefixA+":channel:b1", prefixA+":subs:b1", prefixB, 1000, "b1")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "can't access at least one of the keys")
			// get_channel_with_session builds the session key of A's
			// channel's user from B's prefix: its GET of B's session is
			// refused, and nothing of the session comes back.
			reply, err := raw.Do("EVAL", readScript(t, "get_channel_with_session"), 1, prefixA+":channel:b1", prefixB)
			require.Error(t, err, "reply %q", reply)
			assert.Contains(t, err.Error(), "can't access at least one of the keys")
			assert.NotContains(t, err.Error(), "b-only")
			assert.Equal(t, before, dumpAll(t, admin), "the scripts wrote nothing")

			// Nor any command outside the line.
			for _, cmd := range [][]any{{"KEYS", "*"}, {"SCAN", 0}, {"FLUSHALL"}, {"CONFIG", "GET", "*"}, {"SCRIPT", "FLUSH"}, {"HGETALL", prefixA + ":x"}, {"GETDEL", prefixA + ":x"}, {"TYPE", prefixA + ":x"}, {"PUBLISH", "c", "m"}} {
				_, err := raw.Do(cmd[0].(string), cmd[1:]...)
				require.Error(t, err, "%v", cmd)
				assert.Contains(t, err.Error(), "NOPERM", "%v", cmd)
			}
			require.NoError(t, cs.Close())
			require.NoError(t, hs.Close())
		})
	}
}

// everyKeyedCall is every public method of both stores that reads or
// writes a key.
func everyKeyedCall(ctx context.Context, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, id, topic string) map[string]func() error {
	return map[string]func() error{
		"AddChannel":            func() error { return cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "evil"}) },
		"SetUserSession":        func() error { return cs.SetUserSession(ctx, id, map[string]any{"userId": "evil"}) },
		"SetUserSession(nil)":   func() error { return cs.SetUserSession(ctx, id, nil) },
		"GetChannelAndSession":  func() error { _, err := cs.GetChannelAndSession(ctx, id); return err },
		"GetChannelWithSession": func() error { _, err := cs.GetChannelWithSession(ctx, id); return err },
		"SetPikkuUserID":        func() error { return cs.SetPikkuUserID(ctx, id, "evil") },
		"GetChannel":            func() error { _, err := cs.GetChannel(ctx, id); return err },
		"SetState":              func() error { return cs.SetState(ctx, id, "evil") },
		"GetState":              func() error { _, _, err := cs.GetState(ctx, id); return err },
		"ClearState":            func() error { return cs.ClearState(ctx, id) },
		"RemoveChannels":        func() error { return cs.RemoveChannels(ctx, []string{id}) },
		"GetChannelIDsForTopic": func() error { _, err := hs.GetChannelIDsForTopic(ctx, topic); return err },
		"ScanChannelIDsForTopic": func() error {
			for _, err := range hs.ScanChannelIDsForTopic(ctx, topic) {
				if err != nil {
					return err
				}
			}
			return nil
		},
		"Subscribe":   func() error { _, err := hs.Subscribe(ctx, topic, id); return err },
		"Unsubscribe": func() error { _, err := hs.Unsubscribe(ctx, topic, id); return err },
	}
}

// everySessionCall is every public method of a SessionStore that reads or
// writes a key; ssTTL has WithSessionTTL.
func everySessionCall(ctx context.Context, ss, ssTTL *pikkuredis.SessionStore, userID string) map[string]func() error {
	return map[string]func() error{
		"SessionStore.Get":          func() error { _, _, err := ss.Get(ctx, userID); return err },
		"SessionStore.Set":          func() error { return ss.Set(ctx, userID, map[string]any{"userId": "evil"}) },
		"SessionStore.Set(nil)":     func() error { return ss.Set(ctx, userID, nil) },
		"SessionStore.Set with TTL": func() error { return ssTTL.Set(ctx, userID, map[string]any{"userId": "evil"}) },
		"SessionStore.Clear":        func() error { return ss.Clear(ctx, userID) },
	}
}

// tenantSessions runs every public method of a SessionStore, with and
// without a TTL (ssTTL has WithSessionTTL(time.Hour)), and
// GetChannelWithSession on the tenant's own prefix, the NOSCRIPT fallback
// included; and leaves no key.
func tenantSessions(t *testing.T, ctx context.Context, cs *pikkuredis.ChannelStore, ss, ssTTL *pikkuredis.SessionStore, admin redis.Conn, prefix string) {
	t.Helper()
	key := prefix + ":session:pu2"
	require.NoError(t, ss.Init(ctx))
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c2", ChannelName: "chat"}))
	require.NoError(t, cs.SetPikkuUserID(ctx, "c2", "pu2"))
	got, err := cs.GetChannelWithSession(ctx, "c2")
	require.NoError(t, err)
	assert.Equal(t, "pu2", got.PikkuUserID)
	assert.False(t, got.HasSession)

	require.NoError(t, ss.Set(ctx, "pu2", map[string]any{"userId": "pu2"}))
	session, ok, err := ss.Get(ctx, "pu2")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.JSONEq(t, `{"userId":"pu2"}`, string(session))
	got, err = cs.GetChannelWithSession(ctx, "c2")
	require.NoError(t, err)
	assert.True(t, got.HasSession)
	assert.JSONEq(t, `{"userId":"pu2"}`, string(got.Session))
	ttl, err := redis.Int(admin.Do("TTL", key))
	require.NoError(t, err)
	assert.Equal(t, -1, ttl, "no TTL")

	require.NoError(t, ssTTL.Set(ctx, "pu2", map[string]any{"userId": "pu2", "n": 2}))
	ttl, err = redis.Int(admin.Do("TTL", key))
	require.NoError(t, err)
	assert.True(t, ttl > 0 && ttl <= 3600, "TTL %d", ttl)
	require.NoError(t, ss.Set(ctx, "pu2", nil))
	session, ok, err = ss.Get(ctx, "pu2")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "null", string(session))

	// The server loses its scripts: the call resends it with EVAL.
	_, err = admin.Do("SCRIPT", "FLUSH")
	require.NoError(t, err)
	got, err = cs.GetChannelWithSession(ctx, "c2")
	require.NoError(t, err)
	assert.True(t, got.HasSession)
	assert.Equal(t, "null", string(got.Session))
	_, err = cs.GetChannelWithSession(ctx, "ghost")
	assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)

	require.NoError(t, ss.Clear(ctx, "pu2"))
	_, ok, err = ss.Get(ctx, "pu2")
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, cs.RemoveChannels(ctx, []string{"c2"}))
	keys, err := redis.Strings(admin.Do("KEYS", prefix+":*"))
	require.NoError(t, err)
	assert.Empty(t, keys, "Clear and RemoveChannels left nothing")
}

// tenantDoesEverything runs every public method of both stores on the
// tenant's own prefix, the NOSCRIPT fallback (EVAL) included.
func tenantDoesEverything(t *testing.T, ctx context.Context, cs *pikkuredis.ChannelStore, hs *pikkuredis.EventHubStore, admin redis.Conn, prefix string) {
	t.Helper()
	require.NoError(t, cs.Init(ctx))
	require.NoError(t, hs.Init(ctx))
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1", ChannelName: "chat", OpeningData: map[string]any{"room": "lobby"}}))
	require.NoError(t, cs.SetUserSession(ctx, "c1", map[string]any{"userId": "u1"}))
	got, err := cs.GetChannelAndSession(ctx, "c1")
	require.NoError(t, err)
	assert.JSONEq(t, `{"userId":"u1"}`, string(got.Session))
	require.NoError(t, cs.SetPikkuUserID(ctx, "c1", "pu1"))
	info, err := cs.GetChannel(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "pu1", info.PikkuUserID)
	require.NoError(t, cs.SetState(ctx, "c1", map[string]any{"step": 2}))
	st, ok, err := cs.GetState(ctx, "c1")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.JSONEq(t, `{"step":2}`, string(st))
	require.NoError(t, cs.ClearState(ctx, "c1"))
	_, ok, err = cs.GetState(ctx, "c1")
	require.NoError(t, err)
	assert.False(t, ok)
	assert.ErrorIs(t, cs.SetUserSession(ctx, "ghost", "x"), pikkuredis.ErrChannelNotFound)

	ok, err = hs.Subscribe(ctx, "news", "c1")
	require.NoError(t, err)
	assert.True(t, ok)
	ids, err := hs.GetChannelIDsForTopic(ctx, "news")
	require.NoError(t, err)
	assert.Equal(t, []string{"c1"}, ids)
	var scanned []string
	for id, err := range hs.ScanChannelIDsForTopic(ctx, "news") {
		require.NoError(t, err)
		scanned = append(scanned, id)
	}
	assert.Equal(t, []string{"c1"}, scanned)
	ok, err = hs.Unsubscribe(ctx, "news", "c1")
	require.NoError(t, err)
	assert.True(t, ok)

	// The server loses its scripts: the calls resend them with EVAL.
	_, err = admin.Do("SCRIPT", "FLUSH")
	require.NoError(t, err)
	ok, err = hs.Subscribe(ctx, "news", "c1")
	require.NoError(t, err)
	assert.True(t, ok)
	_, err = hs.Subscribe(ctx, "sports", "c1")
	require.NoError(t, err)
	_, err = admin.Do("SCRIPT", "FLUSH")
	require.NoError(t, err)
	require.NoError(t, cs.RemoveChannels(ctx, []string{"c1"}))
	keys, err := redis.Strings(admin.Do("KEYS", prefix+":*"))
	require.NoError(t, err)
	assert.Empty(t, keys, "RemoveChannels left nothing")
}

// TestACLUserLeasesAndRepair: the ACL line of docs/connections.md covers leases,
// WithRequireChannel and, for a maintenance user with +scan, Repair; and
// with another tenant's prefix each of them is refused and writes nothing.
func TestACLUserLeasesAndRepair(t *testing.T) {
	const pw = "lease-pw-9d02"
	prefixA, prefixB := randomPrefix(t)+"-a", randomPrefix(t)+"-b"
	srv, admin := aclRedis(t, pw, map[string]string{"tenant-a": prefixA, "tenant-b": prefixB})
	args := append(readmeACLLine(t, "maintenance-a", pw, prefixA), "+scan")
	_, err := admin.Do(args[0], toAny(args[1:])...)
	require.NoError(t, err)
	ctx := ctxT(t)
	opts := []pikkuredis.Option{pikkuredis.WithChannelTTL(50 * time.Millisecond), pikkuredis.WithRequireChannel()}
	open := func(user, prefix string) (*pikkuredis.ChannelStore, *pikkuredis.EventHubStore) {
		return openBoth(t, userURL(srv, user, pw), append([]pikkuredis.Option{pikkuredis.WithKeyPrefix(prefix)}, opts...)...)
	}

	// Tenant B's channel, with a lease that has run out.
	bcs, bhs := open("tenant-b", prefixB)
	require.NoError(t, bcs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "b1"}))
	_, err = bhs.Subscribe(ctx, "news", "b1")
	require.NoError(t, err)
	_, err = bhs.Subscribe(ctx, "news", "b-gone")
	assert.ErrorIs(t, err, pikkuredis.ErrChannelNotFound)
	time.Sleep(100 * time.Millisecond)

	// Tenant A on its own prefix.
	cs, hs := open("tenant-a", prefixA)
	require.NoError(t, cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "a1"}))
	_, err = hs.Subscribe(ctx, "news", "a1")
	require.NoError(t, err)
	gone, err := cs.TouchChannels(ctx, "a1", "a-gone")
	require.NoError(t, err)
	assert.Equal(t, []string{"a-gone"}, gone)
	time.Sleep(100 * time.Millisecond)
	n, err := cs.SweepExpired(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "a1 expired")
	_, err = hs.Repair(ctx, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true})
	require.Error(t, err, "Repair needs SCAN, which the servers' user lacks")
	assert.Contains(t, err.Error(), "NOPERM")

	// Tenant A with B's prefix: refused, nothing written; B's expired
	// channel is still there.
	before := dumpAll(t, admin)
	xcs, xhs := open("tenant-a", prefixB)
	for name, call := range map[string]func() error{
		"AddChannel":    func() error { return xcs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "b1"}) },
		"TouchChannels": func() error { _, err := xcs.TouchChannels(ctx, "b1"); return err },
		"SweepExpired":  func() error { _, err := xcs.SweepExpired(ctx); return err },
		"Subscribe":     func() error { _, err := xhs.Subscribe(ctx, "news", "b1"); return err },
	} {
		err := call()
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "NOPERM", name)
	}
	assert.Equal(t, before, dumpAll(t, admin), "no key changed, none added")

	// The maintenance user repairs A's prefix only: b-orphan is an orphan
	// in B's topic, out of its reach.
	_, err = admin.Do("SADD", prefixA+":topic:news", "a-orphan")
	require.NoError(t, err)
	_, err = admin.Do("SADD", prefixB+":topic:news", "b-orphan")
	require.NoError(t, err)
	mhs, err := pikkuredis.OpenEventHubStore(userURL(srv, "maintenance-a", pw), pikkuredis.WithKeyPrefix(prefixA))
	require.NoError(t, err)
	defer mhs.Close()
	r, err := mhs.Repair(ctx, pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true})
	require.NoError(t, err)
	assert.True(t, r.Done)
	assert.Equal(t, []pikkuredis.Subscription{{Topic: "news", ChannelID: "a-orphan"}}, r.Orphans)
	ok, err := redis.Bool(admin.Do("SISMEMBER", prefixB+":topic:news", "b-orphan"))
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestACLDialOptionsNeedMore checks the notes on the ACL line of docs/connections.md: a
// database in the URL needs +select, DialClientName +client|setname, and
// Repair's SCAN, which no key pattern limits, shows every key name.
func TestACLDialOptionsNeedMore(t *testing.T) {
	const pw = "extra-pw-51b7"
	srv, admin := aclRedis(t, pw, map[string]string{"tenant-a": "a", "tenant-b": "b"})
	ctx := ctxT(t)
	_, err := admin.Do("SET", "b:secret-key-name", "v")
	require.NoError(t, err)

	check := func(url string, opts ...pikkuredis.Option) error {
		cs, err := pikkuredis.OpenChannelStore(url, append(opts, pikkuredis.WithKeyPrefix("a"))...)
		require.NoError(t, err)
		defer cs.Close()
		return cs.Init(ctx)
	}
	err = check(userURL(srv, "tenant-a", pw) + "/1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connect to redis: NOPERM")
	assert.Contains(t, err.Error(), "select")
	err = check(userURL(srv, "tenant-a", pw), pikkuredis.WithDialOptions(redis.DialClientName("chat")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "client|setname")

	_, err = admin.Do("ACL", "SETUSER", "tenant-a", "+select", "+client|setname")
	require.NoError(t, err)
	assert.NoError(t, check(userURL(srv, "tenant-a", pw)+"/1", pikkuredis.WithDialOptions(redis.DialClientName("chat"))))

	args := append(readmeACLLine(t, "maintenance", pw, "a"), "+scan")
	_, err = admin.Do(args[0], toAny(args[1:])...)
	require.NoError(t, err)
	maint := dialURL(t, userURL(srv, "maintenance", pw))
	defer maint.Close()
	reply, err := redis.Values(maint.Do("SCAN", 0, "COUNT", 1000))
	require.NoError(t, err)
	names, err := redis.Strings(reply[1], nil)
	require.NoError(t, err)
	assert.Contains(t, names, "b:secret-key-name", "SCAN lists keys outside the user's pattern")
}

func TestACLWrongPasswordIsAClearError(t *testing.T) {
	const pw, wrong = "right-pw-9d2f", "wr0ng-pw-q8Zt"
	srv, _ := aclRedis(t, pw, map[string]string{"tenant-a": "a"})
	for mode, opts := range openModes {
		t.Run(mode, func(t *testing.T) {
			cs, hs := openBoth(t, userURL(srv, "tenant-a", wrong), opts...)
			ctx := ctxT(t)
			for name, err := range map[string]error{"ChannelStore.Init": cs.Init(ctx), "EventHubStore.Init": hs.Init(ctx)} {
				require.Error(t, err, name)
				assert.Contains(t, err.Error(), "pikkuredis: init: connect to redis: WRONGPASS", name)
				assertNoSecret(t, err, wrong)
			}
		})
	}
}

// --- Passwords never in errors ---

// assertNoSecret fails if err shows the secret or any 4 characters of it
// in a row: a password must not leak even in pieces (a port, an escape).
func assertNoSecret(t *testing.T, err error, secret string) {
	t.Helper()
	require.Error(t, err)
	text := err.Error()
	for i := 0; i+4 <= len(secret); i++ {
		if strings.Contains(text, secret[i:i+4]) {
			t.Errorf("the error shows %q of the password %q: %s", secret[i:i+4], secret, text)
			return
		}
	}
}

func TestErrorsNeverShowPasswords(t *testing.T) {
	const s = "Zq9xK7wP"
	badURLs := []struct{ url, secret string }{
		{"redis://u:" + s + "@host:bad", s},                           // bad port
		{"redis://u:Zq9 xK7wP@host", "Zq9 xK7wP"},                     // space: invalid user info
		{"redis://u:Zq9/xK7wP@host:6379", "Zq9/xK7wP"},                // '/' unescaped: url.Parse reads port Zq9
		{"redis://u:Zq9%zzxK7wP@host", "Zq9%zzxK7wP"},                 // bad escape
		{"redis://u:Zq9?xK7wP@host", "Zq9?xK7wP"},                     // '?' unescaped
		{"redis://u:Zq9#xK7wP@host", "Zq9#xK7wP"},                     // '#' unescaped
		{"redis://u:91735/6@host", "91735/6"},                         // parses: port 91735, database path "/6@host"
		{"redis://u:8173/x@host:6379/0", "8173/x"},                    // parses: host u, port 8173, database 0
		{"redis://u:8173?x@host:6379", "8173?x"},                      // parses: host u, port 8173, a query
		{"redis://u:8173#x@host:6379", "8173#x"},                      // parses: host u, port 8173, a fragment
		{"REDIS://u:Zq9:xK7wP@host:bad", "Zq9:xK7wP"},                 // ':' in the password
		{"http://u:" + s + "@host:6379", s},                           // scheme
		{"redis:u:" + s + "@host", s},                                 // opaque
		{"u:" + s + "@host:6379", s},                                  // no scheme
		{"redis://" + s + "@host:6379/x", s},                          // a lone user name is the password
		{"redis://u:" + s + "@host:6379/notadb", s},                   // database path
		{"redis://:" + s + "@host:6379/99999999999999999999", s},      // database out of range
		{"redis://u:" + s + "@[::1", s},                               // bad IPv6 host
		{"redis://u:" + s + "@host:6379/0\x7f", s},                    // control character
		{"redis://u:" + s + "@host:6379/x?y=a@b", s},                  // another '@' later on
		{"redis://u:Zq9@xK7wP@host:bad", "Zq9@xK7wP"},                 // '@' unescaped, bad port
		{"rediss://u:" + s + "@host:6379/0/x", s},                     // two path segments
		{"valkeys://u:" + s + "@host:6379/-1", s},                     // negative database
		{"redis://u:" + s + "@host:6379/x#y@z", s},                    // fragment with '@'
		{"redis://%75:" + s + "%zz@host", s + "%zz"},                  // escaped user, bad escape
		{"redis://u:" + s + "@host:6379/0 ", s},                       // trailing space in path
		{"redis://u:" + s + "@" + strings.Repeat("h", 300) + ":x", s}, // long host, bad port
	}
	for _, c := range badURLs {
		for mode, opts := range openModes {
			_, err := pikkuredis.OpenChannelStore(c.url, opts...)
			require.Error(t, err, "%s %q", mode, c.url)
			assert.Contains(t, err.Error(), "pikkuredis: invalid redis URL")
			assertNoSecret(t, err, c.secret)
			_, err = pikkuredis.OpenEventHubStore(c.url, opts...)
			require.Error(t, err, "%s %q", mode, c.url)
			assertNoSecret(t, err, c.secret)
		}
	}

	// The redacted URL still says which URL it was.
	_, err := pikkuredis.OpenChannelStore("http://tenant:" + s + "@redis.internal:6379")
	assert.ErrorContains(t, err, `"http://tenant:xxxxx@redis.internal:6379"`)
	_, err = pikkuredis.OpenChannelStore("redis://tenant:" + s + "@redis.internal:bad")
	assert.ErrorContains(t, err, `"redis://xxxxx@redis.internal:bad": invalid port ":bad" after host`)
	_, err = pikkuredis.OpenChannelStore("redis://tenant:Zq9/xK7wP@redis.internal:6379")
	assert.ErrorContains(t, err, `"redis://xxxxx@redis.internal:6379": the user name or password (not shown) is malformed`)

	// Dials that fail: nothing listening, a refused password, a
	// certificate that does not verify.
	closed := strings.TrimPrefix(closedPortURL(t), "redis://")
	acl, _ := aclRedis(t, "right-"+s, map[string]string{"tenant-a": "a"})
	tlsSrv, _ := tlsRedis(t)
	wrongCA := pikkuredis.WithDialOptions(redis.DialTLSConfig(&tls.Config{RootCAs: newTestCA(t, "other").pool()}))
	dials := []struct {
		url  string
		opts []pikkuredis.Option
	}{
		{"redis://u:" + s + "@" + closed, nil},
		{"redis://" + s + "@" + closed, nil},
		{"redis://tenant-a:" + s + "@" + acl.Addr, nil},      // WRONGPASS
		{"redis://:" + s + "@" + acl.Addr, nil},              // AUTH of the default user, who has no password
		{"redis://" + s + "@" + acl.Addr, nil},               // the same, as redis-cli writes it
		{"redis://nobody:" + s + "@" + acl.Addr + "/1", nil}, // WRONGPASS before SELECT
		{strings.Replace(tlsSrv.TLSURL, "//", "//u:"+s+"@", 1), []pikkuredis.Option{wrongCA}},
	}
	for _, d := range dials {
		for mode, opts := range openModes {
			opts := append(slices.Clone(d.opts), opts...)
			cs, hs := openBoth(t, d.url, opts...)
			ctx := ctxT(t)
			errs := []error{cs.Init(ctx), hs.Init(ctx), cs.AddChannel(ctx, pikkuredis.Channel{ChannelID: "c1"})}
			_, err := hs.Subscribe(ctx, "news", "c1")
			errs = append(errs, err)
			for _, err := range errs {
				require.Error(t, err, "%s %s", mode, d.url)
				assert.Contains(t, err.Error(), "connect to redis: ", "%s %s", mode, d.url)
				assertNoSecret(t, err, s)
			}
		}
	}
}
