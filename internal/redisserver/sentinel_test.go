package redisserver

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// A master, a replica (Start with --replicaof) and three sentinels with a
// password: the sentinels find each other and the replica, and name the
// master; a wrong password is refused.
func TestStartSentinel(t *testing.T) {
	master := start(t)
	_, port, _ := net.SplitHostPort(master.Addr)
	replica := start(t, "--replicaof", "127.0.0.1", port)
	waitReplicating(t, replica)

	var sentinels []*Sentinel
	for range 3 {
		s, err := StartSentinel(SentinelConfig{MasterAddr: master.Addr, Password: "spw"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		sentinels = append(sentinels, s)
	}
	for _, s := range sentinels {
		if err := s.WaitMonitoring(1, 2, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if addr, err := s.MasterAddr(); err != nil || addr != master.Addr {
			t.Fatalf("MasterAddr() = %q, %v; want %s", addr, err, master.Addr)
		}
	}
	c, err := redis.Dial("tcp", sentinels[0].Addr, redis.DialPassword("wrong"))
	if err == nil {
		c.Close()
		t.Fatal("a sentinel took a wrong password")
	}
}

// waitReplicating waits until replica's link to its master is up.
func waitReplicating(t *testing.T, replica *Server) {
	t.Helper()
	c := dial(t, replica)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := redis.String(c.Do("INFO", "replication"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "master_link_status:up") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not replicating after 10s:\n%s", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
