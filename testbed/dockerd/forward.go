package dockerd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// Forwarder is a TCP relay from a 127.0.0.1 port of its own to an engine's address, so a test can make the engine
// unreachable (Cut: the port refuses connections and open ones break) while the engine and its containers keep
// running, and reachable again (Restore, on the same port) — a network partition between the rotator and a remote
// engine. TLS passes through it untouched.
type Forwarder struct {
	target string

	mu    sync.Mutex
	addr  string
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// NewForwarder relays 127.0.0.1:<a free port> to target (host:port).
func NewForwarder(target string) (*Forwarder, error) {
	f := &Forwarder{target: target, addr: "127.0.0.1:0", conns: map[net.Conn]bool{}}
	if err := f.Restore(); err != nil {
		return nil, err
	}
	return f, nil
}

// NewForwarderT is NewForwarder for a test, closed by its cleanup.
func NewForwarderT(t testing.TB, target string) *Forwarder {
	t.Helper()
	f, err := NewForwarder(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Cut)
	return f
}

// Addr is the relay's address, 127.0.0.1:PORT (the same across Cut and Restore).
func (f *Forwarder) Addr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addr
}

// Cut closes the relay's port and every connection through it, and waits for them to end.
func (f *Forwarder) Cut() {
	f.mu.Lock()
	if f.ln != nil {
		f.ln.Close()
		f.ln = nil
	}
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// Restore opens the relay's port again.
func (f *Forwarder) Restore() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln != nil {
		return errors.New("forwarder: already open")
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	f.ln, f.addr = ln, ln.Addr().String()
	f.wg.Add(1)
	go f.accept(ln)
	return nil
}

func (f *Forwarder) accept(ln net.Listener) {
	defer f.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", f.target)
		if err != nil {
			c.Close()
			continue
		}
		if !f.track(c, up) {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			done := make(chan struct{}, 2)
			relay := func(dst, src net.Conn) { _, _ = io.Copy(dst, src); done <- struct{}{} }
			go relay(up, c)
			go relay(c, up)
			<-done
			c.Close()
			up.Close()
			<-done
			f.mu.Lock()
			delete(f.conns, c)
			delete(f.conns, up)
			f.mu.Unlock()
		}()
	}
}

// track records a relayed pair, unless the relay was cut meanwhile (then it closes them).
func (f *Forwarder) track(c, up net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln == nil {
		c.Close()
		up.Close()
		return false
	}
	f.conns[c], f.conns[up] = true, true
	return true
}
