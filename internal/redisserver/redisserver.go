// Package redisserver starts a throwaway redis-server from PATH on a free
// loopback port, in a temporary directory, for tests and examples. It never
// touches a server it did not start.
package redisserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"
)

// ErrNotInstalled is returned by Start when redis-server is not on PATH.
var ErrNotInstalled = errors.New("redis-server is not on PATH (install it, e.g. apt-get install redis-server, or set REDIS_URL)")

// Server is a running redis-server started by Start.
type Server struct {
	Addr string // host:port
	URL  string // redis://host:port
	// TLSURL is rediss://127.0.0.1:port of the TLS port of a server
	// started by StartTLS; empty otherwise.
	TLSURL string
	Dir    string // its working directory (log file redis.log)
	cmd    *exec.Cmd
	done   chan struct{}
}

// Start runs redis-server on a free port of 127.0.0.1 with persistence off
// and waits until it answers PING. Extra arguments are passed on as
// "--name value" config (for example "--maxmemory", "10mb").
func Start(extra ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	dir, err := os.MkdirTemp("", "pikkuredis-redis-")
	if err != nil {
		return nil, err
	}
	// A free port can be taken between our probe and redis-server's bind;
	// try a few before giving up.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		s, err := startOn(bin, dir, port, extra)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("start redis-server: %w", lastErr)
}

// TLS names the PEM files of a TLS port: the server's certificate and key,
// and the CA certificate redis-server checks client certificates against.
type TLS struct {
	CertFile, KeyFile, CAFile string
}

// StartTLS is Start with a TLS port too, on which clients need no
// certificate of their own (--tls-auth-clients no); the server's TLSURL
// names it. The plain port stays open, so that a test can look at what TLS
// clients did without TLS.
func StartTLS(files TLS, extra ...string) (*Server, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		s, err := Start(append([]string{
			"--tls-port", strconv.Itoa(port),
			"--tls-cert-file", files.CertFile,
			"--tls-key-file", files.KeyFile,
			"--tls-ca-cert-file", files.CAFile,
			"--tls-auth-clients", "no",
		}, extra...)...)
		if err == nil {
			s.TLSURL = "rediss://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startOn(bin, dir string, port int, extra []string) (*Server, error) {
	args := append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"),
		"--daemonize", "no",
	}, extra...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Dir:  dir,
		cmd:  cmd,
		done: make(chan struct{}),
	}
	s.URL = "redis://" + s.Addr
	go func() { cmd.Wait(); close(s.done) }()

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return nil, fmt.Errorf("redis-server on port %d exited: %s", port, tail(log))
		default:
		}
		if c, err := redis.Dial("tcp", s.Addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(time.Second)); err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil {
				return s, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return nil, fmt.Errorf("redis-server on port %d did not answer PING within 10s", port)
}

func (s *Server) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	s.kill()
	os.RemoveAll(s.Dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
