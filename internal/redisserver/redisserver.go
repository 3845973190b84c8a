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
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// ErrNotInstalled is returned by Start when redis-server is not on PATH.
var ErrNotInstalled = errors.New("redis-server is not on PATH (install it: apt-get install redis-server, or brew install redis)")

// notInstalled is another program missing (redis-cli): it matches
// ErrNotInstalled with errors.Is, and says which program is missing.
type notInstalled struct{ msg string }

func (e notInstalled) Error() string        { return e.msg }
func (e notInstalled) Is(target error) bool { return target == ErrNotInstalled }

// Server is a running redis-server started by Start.
type Server struct {
	Addr string // host:port
	URL  string // redis://host:port
	// TLSURL is rediss://127.0.0.1:port of the TLS port of a server
	// started by StartTLS; empty otherwise.
	TLSURL string
	Dir    string // its working directory (log file redis.log)

	bin   string
	port  int
	extra []string

	mu   sync.Mutex // guards cmd and done, which Restart replaces
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
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
	s, err := onFreePort(5, func(port int) (*Server, error) { return startOn(bin, dir, port, extra) })
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	return s, nil
}

// onFreePort calls start with a free loopback port until it succeeds, at
// most tries times: a free port can be taken between the probe and
// redis-server's bind. It returns the last error.
func onFreePort[T any](tries int, start func(port int) (T, error)) (T, error) {
	var zero T
	var lastErr error
	for attempt := 0; attempt < tries; attempt++ {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		v, err := start(port)
		if err == nil {
			return v, nil
		}
		lastErr = err
	}
	return zero, lastErr
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
	return onFreePort(3, func(port int) (*Server, error) {
		s, err := Start(append([]string{
			"--tls-port", strconv.Itoa(port),
			"--tls-cert-file", files.CertFile,
			"--tls-key-file", files.KeyFile,
			"--tls-ca-cert-file", files.CAFile,
			"--tls-auth-clients", "no",
		}, extra...)...)
		if err != nil {
			return nil, err
		}
		s.TLSURL = "rediss://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		return s, nil
	})
}

func startOn(bin, dir string, port int, extra []string) (*Server, error) {
	s := &Server{
		Addr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Dir:   dir,
		bin:   bin,
		port:  port,
		extra: extra,
	}
	s.URL = "redis://" + s.Addr
	if err := s.run(); err != nil {
		return nil, err
	}
	return s, nil
}

// run starts the process on s.port and waits until it answers PING.
func (s *Server) run() error {
	logPath := filepath.Join(s.Dir, "redis.log")
	args := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.Dir,
		"--logfile", logPath,
		"--daemonize", "no",
	}, s.extra...)
	// Both logs are appended to by every run: report only this run's
	// lines. Errors before the log file is open (a bad option) go to
	// stderr, kept in a file beside it.
	outPath := filepath.Join(s.Dir, "redis.stderr")
	logStart, outStart := fileSize(logPath), fileSize(outPath)
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Start()
	out.Close() // the child has its own copy
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			log := append(readFrom(outPath, outStart), readFrom(logPath, logStart)...)
			return &exitError{port: s.port, log: tail(log)}
		default:
		}
		if c, err := redis.Dial("tcp", s.Addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(time.Second)); err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("redis-server on port %d did not answer PING within 10s", s.port)
}

// exitError is a server that exited before answering PING.
type exitError struct {
	port int
	log  string
}

func (e *exitError) Error() string {
	return fmt.Sprintf("redis-server on port %d exited: %s", e.port, e.log)
}

func (s *Server) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill() // SIGKILL; an error only says it has already exited
	<-done
}

// Pid returns the process id of the running server, or 0 after Kill
// (until Restart); a restart changes it.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	select {
	case <-s.done:
		return 0
	default:
	}
	return s.cmd.Process.Pid
}

// Kill kills the server with SIGKILL, as a crash or the OOM killer would:
// no shutdown, no save. Its clients' connections break and its port
// refuses connections until Restart. It returns once the process is gone;
// killing a server that is not running does nothing.
func (s *Server) Kill() { s.kill() }

// Restart starts the server again on the same port with the same
// configuration, after killing it with SIGKILL if it still runs. It comes
// back empty (persistence is off) and with an empty script cache, as a
// restarted or failed-over server does. It returns once the server
// answers PING. A port still held a moment by another socket is tried
// again for up to 10 s.
func (s *Server) Restart() error {
	s.kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.run()
		var exit *exitError
		if err == nil || !errors.As(err, &exit) || !strings.Contains(exit.log, "Address already in use") || time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("restart redis-server: %w", err)
			}
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	s.kill()
	os.RemoveAll(s.Dir)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns what path holds after its first off bytes.
func readFrom(path string, off int64) []byte {
	b, _ := os.ReadFile(path)
	if int64(len(b)) < off {
		return b
	}
	return b[off:]
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
