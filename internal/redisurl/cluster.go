package redisurl

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultClusterPort is the port of a cluster node address written
// without one, as redis-server listens on by default.
const DefaultClusterPort = "6379"

// Cluster is a parsed Redis Cluster URL:
//
//	redis+cluster://[user:password@]host1[:6379][,host2[:6379]...][/]
//
// The hosts are the seed nodes the store asks for the cluster's slot map
// (CLUSTER SLOTS); any one that answers is enough, and the store then
// dials the masters the map names. The user info is read as in a redis://
// URL (a lone user name is the password, as redigo and redis-cli read
// it). rediss+cluster:// dials every node with TLS. A cluster has only
// database 0, so the path is empty, "/" or "/0", and there is no query.
type Cluster struct {
	Scheme string        // "redis+cluster" or "rediss+cluster", lower case
	Addrs  []string      // the seed nodes, host:port, each once
	User   *url.Userinfo // the credentials; nil when none
}

// IsCluster says whether rawURL has a cluster scheme, so that it is read
// by ParseCluster rather than as a redis:// URL.
func IsCluster(rawURL string) bool {
	scheme, _, ok := strings.Cut(rawURL, ":")
	return ok && clusterScheme(scheme)
}

func clusterScheme(s string) bool {
	switch strings.ToLower(s) {
	case "redis+cluster", "rediss+cluster":
		return true
	}
	return false
}

// TLS says whether the nodes are dialled with TLS.
func (c *Cluster) TLS() bool { return c.Scheme == "rediss+cluster" }

// NodeURL is the redis:// (or rediss://) URL of the node at addr, with
// the credentials of c: what the store dials for a node the slot map names.
func (c *Cluster) NodeURL(addr string) string {
	u := url.URL{Scheme: "redis", Host: addr, User: c.User}
	if c.TLS() {
		u.Scheme = "rediss"
	}
	return u.String()
}

// ParseCluster reads a cluster URL (see Cluster). Its errors show the URL
// redacted and never a piece of a password.
func ParseCluster(rawURL string) (*Cluster, error) {
	c, err := parseCluster(rawURL)
	if err != nil {
		return nil, fmt.Errorf("invalid redis cluster URL %q: %w", RedactSentinel(rawURL), err)
	}
	return c, nil
}

func parseCluster(rawURL string) (*Cluster, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || !clusterScheme(scheme) {
		return nil, errors.New("scheme must be redis+cluster:// or rediss+cluster://")
	}
	c := &Cluster{Scheme: strings.ToLower(scheme)}
	userInfo, hosts, path, query, err := splitSentinel(rest)
	if err != nil {
		if err.Error() == malformedSecret { // it names sentinel_password, which a cluster URL has not
			err = errors.New(malformedUserInfo)
		}
		return nil, err
	}
	if userInfo != "" {
		// Decoded as url.Parse decodes a redis:// URL's, which is how the
		// node URL handed to the ordinary dial reads it back.
		u, err := url.Parse("redis://" + userInfo + "@host")
		if err != nil || u.User == nil {
			return nil, errors.New(malformedSecret)
		}
		c.User = u.User
	}
	if hosts == "" {
		return nil, errors.New("no node addresses: write redis+cluster://host1:7000,host2:7001")
	}
	if c.Addrs, err = hostList(hosts, DefaultClusterPort, "cluster node"); err != nil {
		return nil, err
	}
	switch path {
	case "", "/", "/0":
	default:
		return nil, fmt.Errorf("path %q: a cluster has only database 0 (leave the path out)", path)
	}
	if query != "" {
		return nil, errors.New("a cluster URL takes no query parameters")
	}
	return c, nil
}
