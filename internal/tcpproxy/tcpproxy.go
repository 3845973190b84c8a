// Package tcpproxy is a small TCP proxy on loopback for fault tests: it
// stands in for a DNS name or a load balancer in front of Redis, and can
// switch where new connections go (a failover behind one address), stop
// forwarding without closing anything (a server that stopped reading, a
// middlebox that silently drops), and cut every connection.
package tcpproxy

import (
	"net"
	"sync"
)

// Proxy forwards each connection accepted on Addr to the target current
// when it was accepted.
type Proxy struct {
	Addr string // 127.0.0.1:port
	URL  string // redis://127.0.0.1:port

	ln net.Listener

	mu     sync.Mutex
	cond   *sync.Cond // signalled on every change of paused, frozen or closed
	target string
	paused bool // no byte passes on any connection, new ones included
	conns  map[*pair]struct{}
	closed bool
	wg     sync.WaitGroup
}

// pair is one accepted connection and its upstream connection.
type pair struct {
	client, server net.Conn
	frozen         bool // no byte passes on this connection (mu held)
	closed         bool
}

// Start listens on a free loopback port and forwards to target (host:port).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln, target: target, conns: map[*pair]struct{}{}}
	p.URL = "redis://" + p.Addr
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// SetTarget sends the connections accepted from now on to target;
// connections already open stay where they are, as behind a DNS name
// whose record changed.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Pause stops forwarding bytes in both directions on every connection,
// open or new, without closing any: writers fill the socket buffers and
// then block, readers wait. Resume lets them through again.
func (p *Proxy) Pause() { p.setPaused(true) }

// Resume undoes Pause.
func (p *Proxy) Resume() { p.setPaused(false) }

func (p *Proxy) setPaused(v bool) {
	p.mu.Lock()
	p.paused = v
	p.cond.Broadcast()
	p.mu.Unlock()
}

// FreezeOpen stops forwarding on the connections open now, for good,
// sending no FIN and no RST: a middlebox that dropped them silently. New
// connections are forwarded as usual. It returns how many it froze.
func (p *Proxy) FreezeOpen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.frozen = true
	}
	p.cond.Broadcast()
	return len(p.conns)
}

// CloseOpen closes every open connection, both sides: a server or a load
// balancer that dropped them. It returns how many it closed.
func (p *Proxy) CloseOpen() int {
	p.mu.Lock()
	cs := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		p.drop(c)
	}
	return len(cs)
}

// Open says how many connections are open through the proxy.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.ln.Close()
	p.CloseOpen()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target, closed := p.target, p.closed
		p.mu.Unlock()
		if closed {
			client.Close()
			return
		}
		server, err := net.Dial("tcp", target)
		if err != nil {
			client.Close() // as a load balancer with no backend does
			continue
		}
		c := &pair{client: client, server: server}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, client, server)
		go p.pipe(c, server, client)
	}
}

// pipe copies from src to dst, holding what it read while the connection
// is paused or frozen.
func (p *Proxy) pipe(c *pair, src, dst net.Conn) {
	defer p.wg.Done()
	defer p.drop(c)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait(c) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF or a reset: the whole connection goes
			return
		}
	}
}

// wait blocks while bytes may not pass on c; false when c was closed.
func (p *Proxy) wait(c *pair) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !c.closed && (p.paused || c.frozen) {
		p.cond.Wait()
	}
	return !c.closed
}

func (p *Proxy) drop(c *pair) {
	p.mu.Lock()
	if c.closed {
		p.mu.Unlock()
		return
	}
	c.closed = true
	delete(p.conns, c)
	p.cond.Broadcast()
	p.mu.Unlock()
	c.client.Close()
	c.server.Close()
}
