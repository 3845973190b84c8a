package redisserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// ClusterConfig says what StartCluster starts.
type ClusterConfig struct {
	// Masters is the number of masters the 16384 slots are split among
	// evenly: at least 3, which redis-cli --cluster create needs; default 3.
	Masters int
	// ReplicasPerMaster is the number of replicas of each master: default
	// 1; a negative number starts none.
	ReplicasPerMaster int
	// NodeTimeout is cluster-node-timeout: how long a node must not answer
	// before the others count it as failing. A failover takes about two of
	// them. Default 1 s (production's default is 15 s); whole milliseconds.
	NodeTimeout time.Duration
	// Extra is passed on to every redis-server after the cluster's own
	// options, which it can therefore override
	// ("--cluster-require-full-coverage", "yes").
	Extra []string
}

// Cluster is a running Redis Cluster started by StartCluster: redis-server
// processes on loopback ports, one directory each.
//
// Which node is master changes with failovers: ask Masters, MasterOf and
// ReplicaOf, which ask the nodes. The Cluster asks only the nodes it
// counts as up: running (not killed) and not paused by Pause.
type Cluster struct {
	// Nodes are all the servers, masters and replicas, in the order they
	// were started. Kill, Restart and Pid work on them as on any Server; a
	// restarted node keeps its node id (its nodes.conf) but not its data.
	Nodes []*Server
	Dir   string // holds one directory per node, node0, node1, ...

	seeds []string           // the masters' addresses when the cluster started
	ids   map[*Server]string // node ids, fixed for a node's life
	byID  map[string]*Server

	mu     sync.Mutex
	paused map[*Server]int      // the pid Pause stopped
	seen   map[*Server]nodeView // what each node last said when asked
	ports  []int                // reserved by this cluster, released by Close
}

// StartCluster starts cfg.Masters masters and cfg.ReplicasPerMaster
// replicas of each as redis-server processes on 127.0.0.1, joins them
// with redis-cli --cluster create and waits until the cluster is stable
// (see Wait), about 2 s for 3+3 nodes. Ports are picked at random from
// 20000-45535, such that each node's cluster bus port (port+10000) is free
// too and below 55535, and, when possible, both are outside the kernel's
// range of ephemeral ports.
//
// Nodes run with persistence off, cluster-require-full-coverage no (while
// a master is down, the other masters' slots keep being served) and
// cluster-allow-reads-when-down no. It returns an error wrapping
// ErrNotInstalled when redis-server or redis-cli is not on PATH. Close the
// cluster when done.
func StartCluster(cfg ClusterConfig) (*Cluster, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, notInstalled{"start cluster: redis-cli is not on PATH (install redis-tools: apt-get install redis-tools, or brew install redis)"}
	}
	if cfg.Masters == 0 {
		cfg.Masters = 3
	}
	if cfg.Masters < 3 {
		return nil, fmt.Errorf("start cluster: %d masters: redis-cli --cluster create needs at least 3", cfg.Masters)
	}
	switch {
	case cfg.ReplicasPerMaster == 0:
		cfg.ReplicasPerMaster = 1
	case cfg.ReplicasPerMaster < 0:
		cfg.ReplicasPerMaster = 0
	}
	if cfg.NodeTimeout == 0 {
		cfg.NodeTimeout = time.Second
	}
	dir, err := os.MkdirTemp("", "pikkuredis-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		Dir:    dir,
		ids:    map[*Server]string{},
		byID:   map[string]*Server{},
		paused: map[*Server]int{},
		seen:   map[*Server]nodeView{},
	}
	if err := c.start(bin, cli, cfg); err != nil {
		c.Close()
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	return c, nil
}

func (c *Cluster) start(bin, cli string, cfg ClusterConfig) error {
	args := append([]string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(cfg.NodeTimeout.Milliseconds(), 10),
		"--cluster-require-full-coverage", "no",
		"--cluster-allow-reads-when-down", "no",
		// A master waits this long (5 s by default) for more replicas
		// before it streams a full sync: replicas would join seconds late.
		"--repl-diskless-sync-delay", "0",
		// CLUSTER SLOTS leaves out a replica whose replication offset is
		// 0, as it is until its master's first ping down the link: 10 s
		// by default.
		"--repl-ping-replica-period", "1",
	}, cfg.Extra...)

	// All at once: each process takes a moment to start, and a master
	// only reports cluster_state:ok 2 s after its start anyway.
	n := cfg.Masters * (1 + cfg.ReplicasPerMaster)
	c.Nodes = make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Nodes[i], errs[i] = c.startNode(bin, filepath.Join(c.Dir, "node"+strconv.Itoa(i)), args)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	create := []string{"--cluster", "create"}
	for _, s := range c.Nodes {
		create = append(create, s.Addr)
	}
	create = append(create, "--cluster-replicas", strconv.Itoa(cfg.ReplicasPerMaster), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, create...).CombinedOutput(); err != nil {
		return fmt.Errorf("redis-cli --cluster create: %w: %s%s", err, tail(out), c.logTails())
	}

	sn, err := c.look()
	if err != nil {
		return err
	}
	for s, v := range sn.views {
		c.ids[s], c.byID[v.id] = v.id, s
	}
	if err := c.Wait(30 * time.Second); err != nil {
		return err
	}
	masters, err := c.Masters()
	if err != nil {
		return err
	}
	for _, s := range masters {
		c.seeds = append(c.seeds, s.Addr)
	}
	return nil
}

// startNode starts one node in dir on a fresh port, again on another port
// when the first is taken meanwhile.
func (c *Cluster) startNode(bin, dir string, args []string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var lastErr error
	for range 5 {
		port, err := c.reservePort()
		if err != nil {
			return nil, err
		}
		// A node that failed after writing nodes.conf left its port in it.
		os.Remove(filepath.Join(dir, "nodes.conf"))
		s, err := startOn(bin, dir, port, args)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// clusterPorts are the ports handed out to the clusters of this process,
// so that clusters started at once do not pick the same one.
var clusterPorts = struct {
	sync.Mutex
	used map[int]bool
}{used: map[int]bool{}}

// reservePort picks a port of 20000-45535 such that it and its cluster
// bus port (port+10000) are free now and, when possible, outside the
// kernel's range of ephemeral ports, which outgoing connections take at
// any moment.
func (c *Cluster) reservePort() (int, error) {
	lo, hi := ephemeralPorts()
	ephemeral := func(p int) bool { return p >= lo && p <= hi }
	for try := range 2000 {
		p := 20000 + rand.IntN(25536)
		if try < 1500 && (ephemeral(p) || ephemeral(p+10000)) {
			continue
		}
		clusterPorts.Lock()
		taken := clusterPorts.used[p] || clusterPorts.used[p+10000] || clusterPorts.used[p-10000]
		if !taken {
			clusterPorts.used[p] = true
		}
		clusterPorts.Unlock()
		if taken {
			continue
		}
		if portFree(p) && portFree(p+10000) {
			c.mu.Lock()
			c.ports = append(c.ports, p)
			c.mu.Unlock()
			return p, nil
		}
		clusterPorts.Lock()
		delete(clusterPorts.used, p)
		clusterPorts.Unlock()
	}
	return 0, errors.New("no free port pair (port, port+10000) found in 20000-55535")
}

// ephemeralPorts is Linux's range of ports for outgoing connections, or
// an empty range when it cannot be read.
func ephemeralPorts() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 1, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 1, 0
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 1, 0
	}
	return lo, hi
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Addrs returns the host:port of every node, in the order of Nodes.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// URL returns redis+cluster://host:port,host:port,... naming the nodes
// that were masters when the cluster started. After a failover one of them
// may be down or a replica: a client that reads the slot map from any
// node that answers copes with that.
func (c *Cluster) URL() string {
	return "redis+cluster://" + strings.Join(c.seeds, ",")
}

// Masters returns the masters that serve slots now, in the order of their
// first slot, as the nodes that are up agree. It returns an error when
// they do not agree (in the middle of a failover, say: see WaitFailover
// and Wait). A master that serves slots may itself be down.
func (c *Cluster) Masters() ([]*Server, error) {
	sn, err := c.look()
	if err != nil {
		return nil, err
	}
	slots, err := sn.agreed()
	if err != nil {
		return nil, err
	}
	var masters []*Server
	for _, r := range slots {
		s, err := c.node(r.id)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(masters, s) {
			masters = append(masters, s)
		}
	}
	return masters, nil
}

// MasterOf returns the node that serves slot (0-16383), as the nodes that
// are up agree; an error when they do not, or when no node serves it.
func (c *Cluster) MasterOf(slot int) (*Server, error) {
	sn, err := c.look()
	if err != nil {
		return nil, err
	}
	slots, err := sn.agreed()
	if err != nil {
		return nil, err
	}
	id := ownerOf(slots, slot)
	if id == "" {
		return nil, fmt.Errorf("slot %d: no node serves it", slot)
	}
	return c.node(id)
}

// ReplicaOf returns a node that is up and replicates master, by its own
// word (it may still be syncing: see Wait); an error when there is none.
func (c *Cluster) ReplicaOf(master *Server) (*Server, error) {
	id, ok := c.ids[master]
	if !ok {
		return nil, errors.New("replica of a server that is not a node of this cluster")
	}
	sn, err := c.look()
	if err != nil {
		return nil, err
	}
	for _, s := range sn.order {
		if sn.views[s].master == id {
			return s, nil
		}
	}
	return nil, fmt.Errorf("no node that is up replicates %s", master.Addr)
}

// Wait waits up to timeout until the cluster is stable: every node that is
// up says cluster_state:ok, they all agree on who serves each slot, every
// slot is served by a master that is up, no slot is being migrated, and
// every replica that is up has its link to its master up.
func (c *Cluster) Wait(timeout time.Duration) error {
	return c.poll(timeout, "cluster not stable", func(sn *snapshot) error {
		slots, err := sn.agreed()
		if err != nil {
			return err
		}
		next := 0
		for _, r := range slots {
			if r.from != next {
				return fmt.Errorf("slot %d: no node serves it", next)
			}
			next = r.to + 1
			s, err := c.node(r.id)
			if err != nil {
				return err
			}
			if _, up := sn.views[s]; !up {
				return fmt.Errorf("slots %d-%d: their master %s is down", r.from, r.to, s.Addr)
			}
		}
		if next != clusterSlots {
			return fmt.Errorf("slot %d: no node serves it", next)
		}
		for _, s := range sn.order {
			v := sn.views[s]
			switch {
			case !v.stateOK:
				return fmt.Errorf("%s: cluster_state is not ok", s.Addr)
			case v.open:
				return fmt.Errorf("%s: a slot is being migrated", s.Addr)
			case v.master != "" && !v.linkUp:
				return fmt.Errorf("%s: replica's link to its master is not up", s.Addr)
			}
		}
		return nil
	})
}

// WaitFailover waits up to timeout until the slots that old served, as it
// last said when it was up, are served by one other node which says it is
// a master, as all the nodes that are up agree, and those nodes all say
// cluster_state:ok. It returns that new master. old is usually killed
// (Kill) or hung (Pause); it may be up, after a CLUSTER FAILOVER.
func (c *Cluster) WaitFailover(old *Server, timeout time.Duration) (*Server, error) {
	oldID, ok := c.ids[old]
	if !ok {
		return nil, errors.New("failover of a server that is not a node of this cluster")
	}
	c.mu.Lock()
	last, ok := c.seen[old]
	c.mu.Unlock()
	if !ok || last.master != "" {
		return nil, fmt.Errorf("failover of %s: it was not a master when last seen", old.Addr)
	}
	var own []slotRange
	for _, r := range last.slots {
		if r.id == oldID {
			own = append(own, r)
		}
	}
	if len(own) == 0 {
		return nil, fmt.Errorf("failover of %s: it served no slots when last seen", old.Addr)
	}
	var newMaster *Server
	err := c.poll(timeout, "failover of "+old.Addr, func(sn *snapshot) error {
		slots, err := sn.agreed()
		if err != nil {
			return err
		}
		newID := ""
		for _, r := range own {
			for slot := r.from; slot <= r.to; slot++ {
				id := ownerOf(slots, slot)
				switch {
				case id == oldID:
					return fmt.Errorf("slot %d still served by %s", slot, old.Addr)
				case id == "":
					return fmt.Errorf("slot %d served by no node", slot)
				case newID == "":
					newID = id
				case id != newID:
					return fmt.Errorf("its slots went to two nodes, %.8s and %.8s", newID, id)
				}
			}
		}
		s, err := c.node(newID)
		if err != nil {
			return err
		}
		if v, up := sn.views[s]; !up || v.master != "" {
			return fmt.Errorf("%s serves its slots but does not say it is a master", s.Addr)
		}
		for _, s := range sn.order {
			if !sn.views[s].stateOK {
				return fmt.Errorf("%s: cluster_state is not ok", s.Addr)
			}
		}
		newMaster = s
		return nil
	})
	return newMaster, err
}

// SlotMove is one slot on its way from one master to another, begun by
// BeginMove. Until Finish the source serves the keys of the slot it still
// holds and answers ASK for the others, which the destination serves to
// a client that sends ASKING first; a command on several keys of the slot,
// some moved and some not, gets TRYAGAIN.
type SlotMove struct {
	Slot     int
	From, To *Server

	c            *Cluster
	fromID, toID string
}

// MoveSlot moves slot (0-16383) and all its keys from the master that
// serves it to the master to, as redis-cli --cluster reshard does:
// BeginMove, then Finish. Clients may keep using the slot's keys
// meanwhile, following ASK and MOVED. It does nothing when to already
// serves slot.
func (c *Cluster) MoveSlot(slot int, to *Server) error {
	from, err := c.MasterOf(slot)
	if err != nil {
		return fmt.Errorf("move slot %d: %w", slot, err)
	}
	if from == to {
		return nil
	}
	m, err := c.BeginMove(slot, to)
	if err != nil {
		return err
	}
	return m.Finish()
}

// BeginMove starts moving slot to the master to from the master that
// serves it now: CLUSTER SETSLOT IMPORTING on to, then MIGRATING on the
// source. No key moves yet: see MigrateKeys and Finish. It returns an
// error when the nodes that are up disagree on who serves slot, when to
// serves it already, or when to is not a master that is up.
func (c *Cluster) BeginMove(slot int, to *Server) (*SlotMove, error) {
	fail := func(err error) (*SlotMove, error) {
		return nil, fmt.Errorf("move slot %d to %s: %w", slot, to.Addr, err)
	}
	sn, err := c.look()
	if err != nil {
		return fail(err)
	}
	slots, err := sn.agreed()
	if err != nil {
		return fail(err)
	}
	if v, up := sn.views[to]; !up || v.master != "" {
		return fail(errors.New("not a master that is up"))
	}
	m := &SlotMove{Slot: slot, To: to, c: c, fromID: ownerOf(slots, slot), toID: c.ids[to]}
	if m.fromID == "" {
		return fail(errors.New("no node serves it"))
	}
	if m.From, err = c.node(m.fromID); err != nil {
		return fail(err)
	}
	if m.From == to {
		return fail(errors.New("it serves it already"))
	}
	// Importing first: a client sent ASK by the source must find the
	// destination ready for it.
	if err := setSlot(to, slot, "IMPORTING", m.fromID); err != nil {
		return fail(err)
	}
	if err := setSlot(m.From, slot, "MIGRATING", m.toID); err != nil {
		setSlot(to, slot, "STABLE")
		return fail(err)
	}
	return m, nil
}

// MigrateKeys moves up to n keys of the slot from the source to the
// destination in one MIGRATE (CLUSTER GETKEYSINSLOT, then MIGRATE ...
// KEYS) and returns how many keys it found: 0 once the source holds none.
// No key can appear on the source meanwhile: while it migrates the slot it
// sends commands on keys it does not hold to the destination (ASK).
func (m *SlotMove) MigrateKeys(n int) (int, error) {
	conn, err := dialNode(m.From.Addr)
	if err != nil {
		return 0, fmt.Errorf("migrate keys of slot %d: %w", m.Slot, err)
	}
	defer conn.Close()
	keys, err := redis.Strings(conn.Do("CLUSTER", "GETKEYSINSLOT", m.Slot, n))
	if err != nil {
		return 0, fmt.Errorf("migrate keys of slot %d: GETKEYSINSLOT: %w", m.Slot, err)
	}
	if len(keys) == 0 {
		return 0, nil
	}
	host, port, _ := net.SplitHostPort(m.To.Addr)
	// REPLACE: a MIGRATE that timed out may have copied keys it did not
	// delete. The source's copy is the current one (the source serves every
	// key it holds), so it overwrites the destination's; a retry then
	// succeeds instead of failing with BUSYKEY.
	args := []any{host, port, "", 0, 5000, "REPLACE", "KEYS"}
	for _, k := range keys {
		args = append(args, k)
	}
	// OK, or NOKEY when all of them were deleted or expired meanwhile.
	if _, err := conn.Do("MIGRATE", args...); err != nil {
		return 0, fmt.Errorf("migrate keys of slot %d: MIGRATE to %s: %w", m.Slot, m.To.Addr, err)
	}
	return len(keys), nil
}

// Finish migrates the keys left, 100 a MIGRATE, then gives the slot to
// the destination with CLUSTER SETSLOT NODE: on the destination first,
// then on the source, then on the other masters that are up. In that
// order no node sends a client to a node that sends it back. It waits up
// to 10 s for the nodes that are up to agree.
func (m *SlotMove) Finish() error {
	for {
		n, err := m.MigrateKeys(100)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	sn, err := m.c.look()
	if err != nil {
		return fmt.Errorf("finish moving slot %d: %w", m.Slot, err)
	}
	targets := []*Server{m.To, m.From}
	for _, s := range sn.order {
		if v := sn.views[s]; v.master == "" && s != m.To && s != m.From {
			targets = append(targets, s)
		}
	}
	for _, s := range targets {
		if err := setSlot(s, m.Slot, "NODE", m.toID); err != nil {
			return fmt.Errorf("finish moving slot %d: %w", m.Slot, err)
		}
	}
	return m.c.poll(10*time.Second, fmt.Sprintf("slot %d not moved to %s", m.Slot, m.To.Addr), func(sn *snapshot) error {
		slots, err := sn.agreed()
		if err != nil {
			return err
		}
		if id := ownerOf(slots, m.Slot); id != m.toID {
			return fmt.Errorf("served by node %.8s", id)
		}
		for _, s := range sn.order {
			if sn.views[s].open {
				return fmt.Errorf("%s: a slot is being migrated", s.Addr)
			}
		}
		return nil
	})
}

// setSlot sends CLUSTER SETSLOT slot args... to s.
func setSlot(s *Server, slot int, args ...any) error {
	conn, err := dialNode(s.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Do("CLUSTER", append([]any{"SETSLOT", slot}, args...)...); err != nil {
		return fmt.Errorf("%s: CLUSTER SETSLOT %d %v: %w", s.Addr, slot, args, err)
	}
	return nil
}

// Pause stops s with SIGSTOP: a hung node, whose port still accepts
// connections (the kernel does) but which answers nothing, to clients nor
// to the other nodes. The Cluster stops asking it until Resume; Kill and
// Close work on a paused node.
func (c *Cluster) Pause(s *Server) error {
	pid := s.Pid()
	if pid == 0 {
		return fmt.Errorf("pause %s: not running", s.Addr)
	}
	c.mu.Lock()
	c.paused[s] = pid
	c.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pause %s: %w", s.Addr, err)
	}
	return nil
}

// Resume continues a node stopped by Pause (SIGCONT). It does not wait
// for the node to catch up with the cluster: see Wait.
func (c *Cluster) Resume(s *Server) error {
	pid := s.Pid()
	if pid == 0 {
		return fmt.Errorf("resume %s: not running", s.Addr)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("resume %s: %w", s.Addr, err)
	}
	c.mu.Lock()
	delete(c.paused, s)
	c.mu.Unlock()
	return nil
}

// Close kills every node and removes their directories. It can be called
// more than once.
func (c *Cluster) Close() {
	for _, s := range c.Nodes {
		if s != nil {
			s.kill()
		}
	}
	os.RemoveAll(c.Dir)
	c.mu.Lock()
	ports := c.ports
	c.ports = nil
	c.mu.Unlock()
	clusterPorts.Lock()
	for _, p := range ports {
		delete(clusterPorts.used, p)
	}
	clusterPorts.Unlock()
}

// node returns the node whose id is id.
func (c *Cluster) node(id string) (*Server, error) {
	if s := c.byID[id]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("unknown node id %q", id)
}

// up returns the nodes that are running and not paused.
func (c *Cluster) up() []*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var up []*Server
	for _, s := range c.Nodes {
		// A node killed and restarted after Pause has another pid.
		if pid := s.Pid(); pid != 0 && c.paused[s] != pid {
			up = append(up, s)
		}
	}
	return up
}

// slotRange is slots from-to (inclusive) served by node id.
type slotRange struct {
	from, to int
	id       string
}

// nodeView is what one node says of the cluster and of itself.
type nodeView struct {
	id      string      // its node id
	master  string      // the id of the master it replicates; "" for a master
	slots   []slotRange // who serves what, by its slot map, in slot order
	open    bool        // it is importing or migrating a slot
	stateOK bool        // cluster_state:ok
	linkUp  bool        // master_link_status:up (replicas)
}

// snapshot is what the nodes that are up said, one view each.
type snapshot struct {
	order []*Server // in the order of Cluster.Nodes
	views map[*Server]nodeView
}

// look asks every node that is up, at once, and remembers what each said.
func (c *Cluster) look() (*snapshot, error) {
	up := c.up()
	views := make([]nodeView, len(up))
	errs := make([]error, len(up))
	var wg sync.WaitGroup
	for i, s := range up {
		wg.Add(1)
		go func() {
			defer wg.Done()
			views[i], errs[i] = viewOf(s)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sn := &snapshot{order: up, views: map[*Server]nodeView{}}
	c.mu.Lock()
	for i, s := range up {
		sn.views[s] = views[i]
		c.seen[s] = views[i]
	}
	c.mu.Unlock()
	return sn, nil
}

// agreed returns the slot map all the views agree on, or an error naming
// two that differ.
func (sn *snapshot) agreed() ([]slotRange, error) {
	if len(sn.order) == 0 {
		return nil, errors.New("no node is up")
	}
	first := sn.order[0]
	for _, s := range sn.order[1:] {
		if !slices.Equal(sn.views[s].slots, sn.views[first].slots) {
			return nil, fmt.Errorf("nodes disagree on the slot map: %s says %s; %s says %s",
				first.Addr, describe(sn.views[first].slots), s.Addr, describe(sn.views[s].slots))
		}
	}
	return sn.views[first].slots, nil
}

func describe(slots []slotRange) string {
	parts := make([]string, len(slots))
	for i, r := range slots {
		parts[i] = fmt.Sprintf("%d-%d:%.8s", r.from, r.to, r.id)
	}
	return strings.Join(parts, " ")
}

// ownerOf returns the id of the node serving slot, "" when none does.
func ownerOf(slots []slotRange, slot int) string {
	i := sort.Search(len(slots), func(i int) bool { return slots[i].to >= slot })
	if i < len(slots) && slots[i].from <= slot {
		return slots[i].id
	}
	return ""
}

func dialNode(addr string) (redis.Conn, error) {
	return redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(5*time.Second), redis.DialWriteTimeout(5*time.Second))
}

// viewOf asks s for CLUSTER NODES, CLUSTER INFO and INFO replication.
func viewOf(s *Server) (nodeView, error) {
	conn, err := dialNode(s.Addr)
	if err != nil {
		return nodeView{}, err
	}
	defer conn.Close()
	conn.Send("CLUSTER", "NODES")
	conn.Send("CLUSTER", "INFO")
	conn.Send("INFO", "replication")
	all, err := redis.Values(conn.Do(""))
	if err != nil {
		return nodeView{}, fmt.Errorf("%s: %w", s.Addr, err)
	}
	replies := make([]string, len(all))
	for i, r := range all {
		// An error reply (LOADING, say) as itself, not as a wrong type.
		if e, ok := r.(redis.Error); ok {
			return nodeView{}, fmt.Errorf("%s: %w", s.Addr, e)
		}
		if replies[i], err = redis.String(r, nil); err != nil {
			return nodeView{}, fmt.Errorf("%s: %w", s.Addr, err)
		}
	}
	v, err := parseNodes(replies[0])
	if err != nil {
		return nodeView{}, fmt.Errorf("%s: CLUSTER NODES: %w", s.Addr, err)
	}
	v.stateOK = strings.Contains(replies[1], "cluster_state:ok\r\n")
	v.linkUp = strings.Contains(replies[2], "master_link_status:up\r\n")
	return v, nil
}

// parseNodes reads CLUSTER NODES: one line a node, "id host:port@bus[,name]
// flags master-id ping-sent pong-recv epoch link-state slot...", where a
// slot is "n", "n-m", or, on the node's own line, "[n->-id]" (migrating)
// or "[n-<-id]" (importing).
func parseNodes(text string) (nodeView, error) {
	var v nodeView
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return v, fmt.Errorf("short line %q", line)
		}
		flags := strings.Split(f[2], ",")
		if slices.Contains(flags, "myself") {
			v.id = f[0]
			if slices.Contains(flags, "slave") {
				v.master = f[3]
			}
		}
		for _, tok := range f[8:] {
			if strings.HasPrefix(tok, "[") {
				v.open = true
				continue
			}
			from, to, ok := strings.Cut(tok, "-")
			if !ok {
				to = from
			}
			a, err1 := strconv.Atoi(from)
			b, err2 := strconv.Atoi(to)
			if err1 != nil || err2 != nil || a > b {
				return v, fmt.Errorf("bad slot range %q", tok)
			}
			v.slots = append(v.slots, slotRange{a, b, f[0]})
		}
	}
	if v.id == "" {
		return v, errors.New("no line for myself")
	}
	sort.Slice(v.slots, func(i, j int) bool { return v.slots[i].from < v.slots[j].from })
	// One node's contiguous ranges as one, so that views compare equal
	// however a node splits them.
	merged := v.slots[:0]
	for _, r := range v.slots {
		if n := len(merged); n > 0 && merged[n-1].id == r.id && merged[n-1].to+1 == r.from {
			merged[n-1].to = r.to
			continue
		}
		merged = append(merged, r)
	}
	v.slots = merged
	return v, nil
}

// poll calls check with what the nodes that are up say, until it returns
// nil or timeout has passed; then the error says what was last wrong,
// with the tails of the nodes' logs.
func (c *Cluster) poll(timeout time.Duration, what string, check func(*snapshot) error) error {
	deadline := time.Now().Add(timeout)
	for {
		sn, err := c.look()
		if err == nil {
			err = check(sn)
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s after %v: %w%s", what, timeout, err, c.logTails())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// logTails returns the last lines of every node's log.
func (c *Cluster) logTails() string {
	var b strings.Builder
	for _, s := range c.Nodes {
		if s == nil {
			continue
		}
		log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
		lines := bytes.Split(bytes.TrimRight(log, "\n"), []byte("\n"))
		if len(lines) > 6 {
			lines = lines[len(lines)-6:]
		}
		fmt.Fprintf(&b, "\n--- %s (%s):\n%s", s.Addr, s.Dir, bytes.Join(lines, []byte("\n")))
	}
	return b.String()
}
