package tcpproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echo listens on loopback and echoes every line back, prefixed by name.
func echo(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(name + line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, timeout time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("x\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestProxySwitchFreezeClose(t *testing.T) {
	a, b := echo(t, "a"), echo(t, "b")
	p, err := Start(a)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c1, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if got, err := roundTrip(c1, time.Second); err != nil || got != "ax\n" {
		t.Fatalf("before the switch: %q, %v", got, err)
	}
	p.SetTarget(b)
	c2, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(c2, time.Second); err != nil || got != "bx\n" {
		t.Fatalf("a new connection after the switch: %q, %v", got, err)
	}
	if got, err := roundTrip(c1, time.Second); err != nil || got != "ax\n" {
		t.Fatalf("an old connection after the switch: %q, %v", got, err)
	}
	if n := p.FreezeOpen(); n != 2 {
		t.Fatalf("froze %d connections, want 2", n)
	}
	if got, err := roundTrip(c1, 200*time.Millisecond); err == nil {
		t.Fatalf("a frozen connection answered %q", got)
	}
	c3, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if got, err := roundTrip(c3, time.Second); err != nil || got != "bx\n" {
		t.Fatalf("a new connection after the freeze: %q, %v", got, err)
	}
	p.Pause()
	if got, err := roundTrip(c3, 200*time.Millisecond); err == nil {
		t.Fatalf("a paused connection answered %q", got)
	}
	p.Resume()
	// The paused round trip's reply comes now.
	c3.SetDeadline(time.Now().Add(time.Second))
	if got, err := bufio.NewReader(c3).ReadString('\n'); err != nil || got != "bx\n" {
		t.Fatalf("after Resume: %q, %v", got, err)
	}
	if n := p.CloseOpen(); n != 3 {
		t.Fatalf("closed %d connections, want 3", n)
	}
	c3.SetDeadline(time.Now().Add(time.Second))
	if _, err := c3.Read(make([]byte, 1)); err == nil {
		t.Fatal("a closed connection read without an error")
	}
}
