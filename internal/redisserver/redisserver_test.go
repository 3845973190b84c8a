package redisserver

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis/internal/testnote"
)

// Every test here starts redis-server: under -short they all skip, and
// without redis-server they fail (a run that skipped them would print ok).
func TestMain(m *testing.M) {
	flag.Parse() // for testing.Short
	code := m.Run()
	if testing.Short() {
		testnote.Print(fmt.Sprintf("internal/redisserver tests: -short: every test here starts redis-server; %d were skipped", shortSkipped.Load()))
	}
	os.Exit(code)
}

var shortSkipped atomic.Int32

// needRedisServer skips t under -short, and fails it when redis-server is
// not on PATH, saying how to install it.
func needRedisServer(t *testing.T) {
	t.Helper()
	if testing.Short() {
		shortSkipped.Add(1)
		t.Skip("-short: starts redis-server")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("%v", ErrNotInstalled)
	}
}

func start(t *testing.T, extra ...string) *Server {
	t.Helper()
	needRedisServer(t)
	s, err := Start(extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func dial(t *testing.T, s *Server) redis.Conn {
	t.Helper()
	c, err := redis.DialURL(s.URL, redis.DialReadTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Kill breaks the clients' connections and refuses new ones; Restart
// brings the server back on the same port, empty, with its configuration
// and an empty script cache.
func TestKillAndRestart(t *testing.T) {
	s := start(t, "--maxmemory", "7mb")
	c := dial(t, s)
	if _, err := c.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	sha, err := redis.String(c.Do("SCRIPT", "LOAD", "return 1"))
	if err != nil {
		t.Fatal(err)
	}
	addr, url, pid := s.Addr, s.URL, s.Pid()
	if pid <= 0 {
		t.Fatalf("Pid() = %d for a running server", pid)
	}

	s.Kill()
	if p := s.Pid(); p != 0 {
		t.Fatalf("Pid() = %d after Kill, want 0", p)
	}
	if _, err := c.Do("PING"); err == nil {
		t.Fatal("a connection to a killed server still answers")
	}
	if _, err := redis.DialURL(s.URL, redis.DialConnectTimeout(time.Second)); err == nil {
		t.Fatal("a killed server still accepts connections")
	}
	s.Kill() // harmless

	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if p := s.Pid(); p <= 0 || p == pid {
		t.Fatalf("Pid() = %d after Restart, was %d", p, pid)
	}
	if s.Addr != addr || s.URL != url {
		t.Fatalf("restarted on %s (%s), want %s (%s)", s.Addr, s.URL, addr, url)
	}
	c2 := dial(t, s)
	if n, err := redis.Int(c2.Do("DBSIZE")); err != nil || n != 0 {
		t.Fatalf("DBSIZE after restart: %d %v, want 0", n, err)
	}
	if ex, err := redis.Ints(c2.Do("SCRIPT", "EXISTS", sha)); err != nil || ex[0] != 0 {
		t.Fatalf("SCRIPT EXISTS after restart: %v %v, want [0]", ex, err)
	}
	mm, err := redis.Strings(c2.Do("CONFIG", "GET", "maxmemory"))
	if err != nil || mm[1] != "7340032" {
		t.Fatalf("maxmemory after restart: %v %v, want 7mb", mm, err)
	}

	// Restart also kills a server that is running.
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Do("PING"); err == nil {
		t.Fatal("a connection survived a restart")
	}
	dial(t, s)
}

// A server that cannot start says why, also when it fails before opening
// its log file (a bad option is reported on stderr).
func TestStartReportsWhyItFailed(t *testing.T) {
	needRedisServer(t)
	_, err := Start("--no-such-option", "x")
	if err == nil {
		t.Fatal("Start with a bad option succeeded")
	}
	if !strings.Contains(err.Error(), "no-such-option") {
		t.Fatalf("error does not say why: %v", err)
	}
}

// A restart that fails says why, from this run's lines only.
func TestRestartReportsWhyItFailed(t *testing.T) {
	s := start(t)
	s.Kill()
	s.extra = []string{"--no-such-option", "x"}
	err := s.Restart()
	if err == nil {
		t.Fatal("Restart with a bad option succeeded")
	}
	if !strings.Contains(err.Error(), "no-such-option") {
		t.Fatalf("error does not say why: %v", err)
	}
}

// A port another socket still holds when the server restarts is tried
// again until it is free.
func TestRestartWaitsForItsPort(t *testing.T) {
	s := start(t)
	s.Kill()
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(300 * time.Millisecond); l.Close() }()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, s).Do("PING"); err != nil {
		t.Fatal(err)
	}
}
