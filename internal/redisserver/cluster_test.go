package redisserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
)

func startCluster(t *testing.T, cfg ClusterConfig) *Cluster {
	t.Helper()
	began := time.Now()
	needRedisServer(t)
	c, err := StartCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("StartCluster took %v", time.Since(began))
	t.Cleanup(c.Close)
	return c
}

// dialNodeT connects to one node, without following redirections.
func dialNodeT(t *testing.T, s *Server) redis.Conn {
	t.Helper()
	c, err := redis.Dial("tcp", s.Addr, redis.DialReadTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A 3+3 cluster: its ports leave room for the bus ports, the three
// masters serve all 16384 slots (by CLUSTER SLOTS, not by the code under
// test) and have a replica each, a key is served by its master and the other
// masters redirect to it; Close removes everything.
func TestStartCluster(t *testing.T) {
	c := startCluster(t, ClusterConfig{})
	if len(c.Nodes) != 6 || len(c.Addrs()) != 6 {
		t.Fatalf("%d nodes, %d addresses; want 6", len(c.Nodes), len(c.Addrs()))
	}
	for _, addr := range c.Addrs() {
		_, p, _ := net.SplitHostPort(addr)
		if port, _ := strconv.Atoi(p); port < 1024 || port+10000 > 55535 {
			t.Errorf("node on port %d: its bus port %d is not below 55535", port, port+10000)
		}
	}
	masters, err := c.Masters()
	if err != nil {
		t.Fatal(err)
	}
	if len(masters) != 3 {
		t.Fatalf("%d masters, want 3", len(masters))
	}
	var masterAddrs []string
	for _, m := range masters {
		masterAddrs = append(masterAddrs, m.Addr)
	}
	if want := "redis+cluster://" + strings.Join(masterAddrs, ","); c.URL() != want {
		t.Errorf("URL() = %q, want %q", c.URL(), want)
	}

	ranges, err := redis.Values(dialNodeT(t, c.Nodes[5]).Do("CLUSTER", "SLOTS"))
	if err != nil {
		t.Fatal(err)
	}
	covered := 0
	served := map[string]bool{}
	for _, r := range ranges {
		r, _ := redis.Values(r, nil)
		from, _ := redis.Int(r[0], nil)
		to, _ := redis.Int(r[1], nil)
		covered += to - from + 1
		hp, _ := redis.Values(r[2], nil)
		host, _ := redis.String(hp[0], nil)
		port, _ := redis.Int(hp[1], nil)
		served[net.JoinHostPort(host, strconv.Itoa(port))] = true
	}
	if covered != 16384 {
		t.Errorf("CLUSTER SLOTS covers %d slots, want 16384", covered)
	}
	for _, m := range masters {
		if !served[m.Addr] {
			t.Errorf("master %s serves no slot by CLUSTER SLOTS (%v)", m.Addr, served)
		}
	}
	replicas := map[*Server]bool{}
	for _, m := range masters {
		r, err := c.ReplicaOf(m)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(masters, r) || replicas[r] {
			t.Fatalf("ReplicaOf(%s) = %s, a master or another master's replica", m.Addr, r.Addr)
		}
		replicas[r] = true
	}

	slot := redisc.Slot("k")
	m, err := c.MasterOf(slot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialNodeT(t, m).Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := redis.String(dialNodeT(t, m).Do("GET", "k")); err != nil || v != "v" {
		t.Fatalf("GET k from its master: %q %v", v, err)
	}
	for _, other := range masters {
		if other == m {
			continue
		}
		_, err := dialNodeT(t, other).Do("GET", "k")
		if want := fmt.Sprintf("MOVED %d %s", slot, m.Addr); err == nil || err.Error() != want {
			t.Errorf("GET k from another master: %v, want %s", err, want)
		}
	}

	// With no failover under way, WaitFailover says what it waited for.
	_, err = c.WaitFailover(m, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "still served by "+m.Addr) || !strings.Contains(err.Error(), m.Dir) {
		t.Fatalf("WaitFailover of a master that is up and serving: %v", err)
	}
	if _, err := c.BeginMove(slot, m); err == nil {
		t.Fatal("BeginMove to the master that serves the slot succeeded")
	}

	c.Close()
	for _, s := range c.Nodes {
		if s.Pid() != 0 {
			t.Errorf("%s still runs after Close", s.Addr)
		}
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Close: %v", c.Dir, err)
	}
}

// Without redis-cli, StartCluster says so, as ErrNotInstalled.
func TestStartClusterNeedsRedisCli(t *testing.T) {
	needRedisServer(t)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(dir, "redis-server")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	c, err := StartCluster(ClusterConfig{})
	if err == nil {
		c.Close()
		t.Fatal("StartCluster succeeded without redis-cli")
	}
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "redis-cli") || strings.Contains(err.Error(), "redis-server") {
		t.Fatalf("error %v, want ErrNotInstalled naming redis-cli alone (redis-server is there)", err)
	}
}

// A killed master's replica takes over its slots, with the data it had
// replicated; the old master, restarted, comes back as its replica.
func TestClusterKillFailover(t *testing.T) {
	c := startCluster(t, ClusterConfig{})
	slot := redisc.Slot("{f}")
	old, err := c.MasterOf(slot)
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.ReplicaOf(old)
	if err != nil {
		t.Fatal(err)
	}
	conn := dialNodeT(t, old)
	if _, err := conn.Do("SET", "{f}:k", "v"); err != nil {
		t.Fatal(err)
	}
	if n, err := redis.Int(conn.Do("WAIT", 1, 5000)); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d %v", n, err)
	}

	old.Kill()
	began := time.Now()
	got, err := c.WaitFailover(old, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failover after Kill took %v", time.Since(began))
	if got != want {
		t.Fatalf("new master %s, want %s, old's replica", got.Addr, want.Addr)
	}
	if v, err := redis.String(dialNodeT(t, got).Do("GET", "{f}:k")); err != nil || v != "v" {
		t.Fatalf("GET from the new master: %q %v", v, err)
	}
	masters, err := c.Masters()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(masters, got) || slices.Contains(masters, old) || len(masters) != 3 {
		t.Fatalf("Masters() after the failover: %v", addrsOf(masters))
	}

	if err := old.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r, err := c.ReplicaOf(got); err != nil || r != old {
		t.Fatalf("ReplicaOf(new master) = %v, %v; want the restarted old master %s", r, err, old.Addr)
	}
}

// A hung (paused) master is failed over too; resumed, it learns it lost
// its slots and replicates the new master.
func TestClusterPauseFailover(t *testing.T) {
	c := startCluster(t, ClusterConfig{})
	old, err := c.MasterOf(redisc.Slot("{p}"))
	if err != nil {
		t.Fatal(err)
	}
	conn := dialNodeT(t, old)
	if _, err := conn.Do("SET", "{p}:k", "v"); err != nil {
		t.Fatal(err)
	}
	if n, err := redis.Int(conn.Do("WAIT", 1, 5000)); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d %v", n, err)
	}

	if err := c.Pause(old); err != nil {
		t.Fatal(err)
	}
	hung, err := redis.Dial("tcp", old.Addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatalf("a paused node refused a connection: %v", err)
	}
	if _, err := hung.Do("PING"); err == nil {
		t.Fatal("a paused node answered PING")
	}
	hung.Close()
	began := time.Now()
	got, err := c.WaitFailover(old, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failover after Pause took %v", time.Since(began))
	if got == old {
		t.Fatal("WaitFailover returned the old master")
	}

	if err := c.Resume(old); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r, err := c.ReplicaOf(got); err != nil || r != old {
		t.Fatalf("ReplicaOf(new master) = %v, %v; want the resumed old master %s", r, err, old.Addr)
	}
	info, err := redis.String(dialNodeT(t, old).Do("INFO", "replication"))
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(got.Addr)
	if !strings.Contains(info, "role:slave\r\n") || !strings.Contains(info, "master_port:"+port+"\r\n") {
		t.Fatalf("the resumed old master's INFO replication:\n%s", info)
	}
	if v, err := redis.String(dialNodeT(t, got).Do("GET", "{p}:k")); err != nil || v != "v" {
		t.Fatalf("GET from the new master: %q %v", v, err)
	}
}

// A slot moves, with its keys, while a client keeps writing new keys and
// incrementing old ones in it, following MOVED and ASK (redisc's
// RetryConn): while it moves, the source sends a key it gave away, and any
// key it does not hold, to the destination (ASK), which serves them only
// after ASKING; afterwards every key is on the destination with the last
// value written. MoveSlot then moves it back.
func TestClusterMoveSlot(t *testing.T) {
	c := startCluster(t, ClusterConfig{})
	const tag = "{mv}"
	slot := redisc.Slot(tag)
	from, err := c.MasterOf(slot)
	if err != nil {
		t.Fatal(err)
	}
	masters, err := c.Masters()
	if err != nil {
		t.Fatal(err)
	}
	to := masters[(slices.Index(masters, from)+1)%len(masters)]

	rc := &redisc.Cluster{
		StartupNodes: c.Addrs(),
		DialOptions:  []redis.DialOption{redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(5 * time.Second)},
		CreatePool: func(addr string, opts ...redis.DialOption) (*redis.Pool, error) {
			return &redis.Pool{MaxIdle: 4, Dial: func() (redis.Conn, error) { return redis.Dial("tcp", addr, opts...) }}, nil
		},
	}
	defer rc.Close()
	if err := rc.Refresh(); err != nil {
		t.Fatal(err)
	}
	do := func(cmd string, args ...any) (any, error) {
		conn := rc.Get()
		defer conn.Close()
		retry, err := redisc.RetryConn(conn, 10, 10*time.Millisecond)
		if err != nil {
			return nil, err
		}
		return retry.Do(cmd, args...)
	}

	const counters = 300
	counter := func(j int) string { return fmt.Sprintf("%s:c:%d", tag, j) }
	for j := range counters {
		if _, err := do("SET", counter(j), 0); err != nil {
			t.Fatal(err)
		}
	}

	// The writer: a new key a round, read back, and one counter
	// incremented, which must count every increment.
	var ops atomic.Int64
	incrs := make([]int, counters)
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			key := fmt.Sprintf("%s:new:%d", tag, i)
			if _, err := do("SET", key, i); err != nil {
				done <- fmt.Errorf("SET %s: %w", key, err)
				return
			}
			if v, err := redis.Int(do("GET", key)); err != nil || v != i {
				done <- fmt.Errorf("GET %s just written: %d %v", key, v, err)
				return
			}
			j := i % counters
			n, err := redis.Int(do("INCR", counter(j)))
			if err != nil {
				done <- fmt.Errorf("INCR %s: %w", counter(j), err)
				return
			}
			incrs[j]++
			if n != incrs[j] {
				done <- fmt.Errorf("INCR %s = %d after %d increments: an update was lost", counter(j), n, incrs[j])
				return
			}
			ops.Store(int64(i + 1))
		}
	}()
	// waitOps waits until the writer has done n more rounds.
	waitOps := func(n int64) {
		t.Helper()
		target := ops.Load() + n
		deadline := time.Now().Add(30 * time.Second)
		for ops.Load() < target {
			select {
			case err := <-done:
				t.Fatalf("the writer stopped: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("the writer did %d rounds in 30 s, want %d", ops.Load(), target)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitOps(50)

	m, err := c.BeginMove(slot, to)
	if err != nil {
		t.Fatal(err)
	}
	if m.From != from || m.To != to || m.Slot != slot {
		t.Fatalf("BeginMove: %d from %s to %s", m.Slot, m.From.Addr, m.To.Addr)
	}
	src, dst := dialNodeT(t, from), dialNodeT(t, to)
	count := func(conn redis.Conn) int {
		t.Helper()
		n, err := redis.Int(conn.Do("CLUSTER", "COUNTKEYSINSLOT", slot))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	keysOn := func(conn redis.Conn) []string {
		t.Helper()
		keys, err := redis.Strings(conn.Do("CLUSTER", "GETKEYSINSLOT", slot, 1_000_000))
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	// While the slot migrates no key appears on the source (the writer's
	// new keys go to the destination), and the keys migrated leave it.
	before := keysOn(src)
	if n, err := m.MigrateKeys(50); err != nil || n != 50 {
		t.Fatalf("MigrateKeys(50) = %d, %v", n, err)
	}
	after := keysOn(src)
	var gone []string
	for _, k := range before {
		if !slices.Contains(after, k) {
			gone = append(gone, k)
		}
	}
	if len(after) != len(before)-50 || len(gone) != 50 {
		t.Fatalf("the source held %d keys of the slot, then %d after migrating 50, %d of them gone", len(before), len(after), len(gone))
	}
	dst.Send("ASKING")
	if n, err := redis.Int(dst.Do("EXISTS", gone[0])); err != nil || n != 1 {
		t.Fatalf("a migrated key on the destination: EXISTS %s = %d, %v", gone[0], n, err)
	}
	ask := fmt.Sprintf("ASK %d %s", slot, to.Addr)
	moved := fmt.Sprintf("MOVED %d %s", slot, from.Addr)
	if _, err := src.Do("SET", tag+":probe", "x"); err == nil || err.Error() != ask {
		t.Fatalf("SET of a new key on the source: %v, want %s", err, ask)
	}
	if _, err := dst.Do("SET", tag+":probe", "x"); err == nil || err.Error() != moved {
		t.Fatalf("SET on the destination without ASKING: %v, want %s", err, moved)
	}
	dst.Send("ASKING")
	if _, err := dst.Do("SET", tag+":probe", "x"); err != nil {
		t.Fatalf("SET on the destination after ASKING: %v", err)
	}
	if _, err := src.Do("GET", gone[0]); err == nil || err.Error() != ask {
		t.Fatalf("GET of a migrated key on the source: %v, want %s", err, ask)
	}
	waitOps(100) // through ASK

	if err := m.Finish(); err != nil {
		t.Fatal(err)
	}
	waitOps(100) // through MOVED
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	written := int(ops.Load())
	t.Logf("the writer did %d rounds", written)

	if got, err := c.MasterOf(slot); err != nil || got != to {
		t.Fatalf("MasterOf(%d) after the move = %v, %v; want %s", slot, got, err, to.Addr)
	}
	total := counters + written + 1 // + the probe
	if n := count(src); n != 0 {
		t.Fatalf("the source still holds %d keys of the slot", n)
	}
	if n := count(dst); n != total {
		t.Fatalf("the destination holds %d keys of the slot, want %d", n, total)
	}
	checkKeys := func() {
		t.Helper()
		for j := range counters {
			if n, err := redis.Int(do("GET", counter(j))); err != nil || n != incrs[j] {
				t.Fatalf("%s = %d, %v; want %d", counter(j), n, err, incrs[j])
			}
		}
		for i := range written {
			key := fmt.Sprintf("%s:new:%d", tag, i)
			if v, err := redis.Int(do("GET", key)); err != nil || v != i {
				t.Fatalf("%s = %d, %v; want %d", key, v, err, i)
			}
		}
	}
	checkKeys()

	if err := c.MoveSlot(slot, from); err != nil {
		t.Fatal(err)
	}
	if n := count(src); n != total {
		t.Fatalf("after MoveSlot back, the source holds %d keys of the slot, want %d", n, total)
	}
	checkKeys()
	if err := c.MoveSlot(slot, from); err != nil {
		t.Fatalf("MoveSlot to the node that serves it: %v", err)
	}
	if err := c.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func addrsOf(nodes []*Server) []string {
	var addrs []string
	for _, s := range nodes {
		addrs = append(addrs, s.Addr)
	}
	return addrs
}
