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
	"time"

	"github.com/gomodule/redigo/redis"
)

// SentinelConfig says what a sentinel started by StartSentinel monitors.
type SentinelConfig struct {
	MasterName string // default "mymaster"
	MasterAddr string // host:port of the master to monitor; required
	Quorum     int    // sentinels that must agree the master is down; default 2

	// DownAfter is how long the master must not answer before this
	// sentinel thinks it down (default 500 ms); FailoverTimeout bounds a
	// failover's steps (default 2 s). Both small, so that tests fail over
	// in seconds rather than the production defaults' minutes.
	DownAfter, FailoverTimeout time.Duration

	// Password, when set, is the sentinel's requirepass, and what it
	// sends to the other sentinels (sentinel sentinel-pass): give every
	// sentinel of a set the same.
	Password string
	// Extra lines appended to sentinel.conf ("sentinel auth-pass mymaster pw").
	Extra []string
}

// Sentinel is a running redis-server --sentinel started by StartSentinel.
type Sentinel struct {
	Addr string // host:port
	Dir  string // its working directory: sentinel.conf (rewritten by it) and sentinel.log

	cfg  SentinelConfig
	cmd  *exec.Cmd
	done chan struct{}
}

// StartSentinel runs redis-server --sentinel on a free port of 127.0.0.1,
// monitoring cfg.MasterAddr, and waits until it answers PING. It does not
// wait for it to find the replicas and the other sentinels: see
// WaitMonitoring.
func StartSentinel(cfg SentinelConfig) (*Sentinel, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	if cfg.MasterAddr == "" {
		return nil, errors.New("start sentinel: no master address")
	}
	if cfg.MasterName == "" {
		cfg.MasterName = "mymaster"
	}
	if cfg.Quorum == 0 {
		cfg.Quorum = 2
	}
	if cfg.DownAfter == 0 {
		cfg.DownAfter = 500 * time.Millisecond
	}
	if cfg.FailoverTimeout == 0 {
		cfg.FailoverTimeout = 2 * time.Second
	}
	dir, err := os.MkdirTemp("", "pikkuredis-sentinel-")
	if err != nil {
		return nil, err
	}
	s, err := onFreePort(5, func(port int) (*Sentinel, error) { return startSentinelOn(bin, dir, port, cfg) })
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start sentinel: %w", err)
	}
	return s, nil
}

func startSentinelOn(bin, dir string, port int, cfg SentinelConfig) (*Sentinel, error) {
	host, mport, err := net.SplitHostPort(cfg.MasterAddr)
	if err != nil {
		return nil, err
	}
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	lines := []string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"daemonize no",
		"dir " + dir,
		"logfile " + filepath.Join(dir, "sentinel.log"),
		fmt.Sprintf("sentinel monitor %s %s %s %d", cfg.MasterName, host, mport, cfg.Quorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s %s", cfg.MasterName, ms(cfg.DownAfter)),
		fmt.Sprintf("sentinel failover-timeout %s %s", cfg.MasterName, ms(cfg.FailoverTimeout)),
		fmt.Sprintf("sentinel parallel-syncs %s 1", cfg.MasterName),
	}
	if cfg.Password != "" {
		lines = append(lines, "requirepass "+cfg.Password, "sentinel sentinel-pass "+cfg.Password)
	}
	lines = append(lines, cfg.Extra...)
	// Sentinel rewrites its config file (it records what it learns), so
	// each run gets its own, written afresh.
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(filepath.Join(dir, "sentinel.stderr"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Start()
	out.Close()
	if err != nil {
		return nil, err
	}
	s := &Sentinel{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, cfg: cfg, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			b, _ := os.ReadFile(filepath.Join(dir, "sentinel.stderr"))
			l, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
			return nil, &exitError{port: port, log: tail(append(b, l...))}
		default:
		}
		if c, err := s.Dial(); err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil {
				return s, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Kill()
	return nil, fmt.Errorf("sentinel on port %d did not answer PING within 10s", port)
}

// Dial connects to the sentinel, with its password.
func (s *Sentinel) Dial() (redis.Conn, error) {
	return redis.Dial("tcp", s.Addr, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(2*time.Second), redis.DialWriteTimeout(2*time.Second),
		redis.DialPassword(s.cfg.Password))
}

// MasterAddr is the master's host:port as this sentinel sees it now.
func (s *Sentinel) MasterAddr() (string, error) {
	c, err := s.Dial()
	if err != nil {
		return "", err
	}
	defer c.Close()
	hp, err := redis.Strings(c.Do("SENTINEL", "get-master-addr-by-name", s.cfg.MasterName))
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("get-master-addr-by-name: %q", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// WaitMonitoring waits until the sentinel sees the master up with at
// least replicas replicas and otherSentinels other sentinels: until then
// it could not take part in a failover.
func (s *Sentinel) WaitMonitoring(replicas, otherSentinels int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last map[string]string
	for {
		c, err := s.Dial()
		if err == nil {
			last, err = redis.StringMap(c.Do("SENTINEL", "master", s.cfg.MasterName))
			c.Close()
		}
		if err == nil && last["flags"] == "master" && atoi(last["num-slaves"]) >= replicas && atoi(last["num-other-sentinels"]) >= otherSentinels {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sentinel %s: after %v: flags=%q num-slaves=%q num-other-sentinels=%q (err %v)",
				s.Addr, timeout, last["flags"], last["num-slaves"], last["num-other-sentinels"], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// Kill kills the sentinel with SIGKILL and returns once it is gone.
func (s *Sentinel) Kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// Stop kills the sentinel and removes its directory.
func (s *Sentinel) Stop() {
	s.Kill()
	os.RemoveAll(s.Dir)
}
