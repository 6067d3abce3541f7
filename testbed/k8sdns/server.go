// Package k8sdns is a tiny cluster DNS for the test Kubernetes (testbed/k8s), which runs no CoreDNS: it answers A
// records for pods of headless Services (HOSTNAME.SUBDOMAIN.NS.svc.DOMAIN, the names a StatefulSet's pods find
// each other by) and for Services (SVC.NS.svc.DOMAIN), reading the API server afresh for every query. It is
// authoritative for DOMAIN only and forwards nothing: every other name is REFUSED, so no query leaves the machine.
//
// The kubelet points pods at it with clusterDNS: [the server's IP] and clusterDomain: DOMAIN.
package k8sdns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
)

const (
	// TTL is the time to live of every record served: short, so pods see a replaced pod's new IP at once.
	TTL = 1 * time.Second
	// queryTimeout bounds the API server reads behind one query.
	queryTimeout = 2 * time.Second
	// tcpIdleTimeout closes a TCP connection that sends no next query for this long.
	tcpIdleTimeout = 10 * time.Second
	// portTries is how often Serve on port 0 picks a UDP port again when TCP cannot take the same one.
	portTries = 10
)

// Server answers DNS queries on one address over UDP and TCP until Close or the end of Serve's context.
type Server struct {
	udp      net.PacketConn
	tcp      net.Listener
	resolver resolver
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closeErr error // set by the goroutine that closes the sockets, read after wg.Wait

	mu    sync.Mutex
	conns map[net.Conn]struct{} // open TCP connections, closed on shutdown
}

// Serve answers DNS on addr (UDP and TCP on the same port, e.g. "10.244.77.1:53") for the names under domain
// (e.g. "cluster.local"), from the API server behind cs. Port 0 picks a free port; Addr tells which.
//
// On Linux the sockets are bound with IP_FREEBIND, so addr's IP need not be on an interface yet: Serve may run
// before the CNI bridge that will carry the gateway IP exists, and queries are answered once it does.
//
// The server stops when ctx ends or Close is called, whichever comes first; Close waits for it to stop.
func Serve(ctx context.Context, addr string, cs kubernetes.Interface, domain string) (*Server, error) {
	if cs == nil {
		return nil, errors.New("k8sdns: clientset is nil")
	}
	zone := strings.ToLower(strings.Trim(domain, "."))
	if zone == "" {
		return nil, errors.New("k8sdns: domain is empty")
	}
	udp, tcp, err := listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Server{
		udp: udp, tcp: tcp, cancel: cancel, conns: map[net.Conn]struct{}{},
		resolver: resolver{cs: cs, zone: zone},
	}
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.serveUDP(ctx) }()
	go func() { defer s.wg.Done(); s.serveTCP(ctx) }()
	go func() { defer s.wg.Done(); <-ctx.Done(); s.closeErr = s.closeSockets() }()
	return s, nil
}

// Addr is the address the server answers on, "IP:PORT" (the chosen port when Serve was given port 0).
func (s *Server) Addr() string { return s.udp.LocalAddr().String() }

// Close stops the server and waits until every query in flight is done. Calling it again returns the same error.
func (s *Server) Close() error {
	s.cancel()
	s.wg.Wait()
	return s.closeErr
}

// closeSockets closes the UDP socket, the TCP listener and every open TCP connection.
func (s *Server) closeSockets() error {
	errs := []error{s.udp.Close(), s.tcp.Close()}
	s.mu.Lock()
	for c := range s.conns {
		c.Close() // its handler sees the error and returns
	}
	s.mu.Unlock()
	for i, err := range errs {
		if err != nil {
			errs[i] = fmt.Errorf("k8sdns: close %s: %w", []string{"udp", "tcp"}[i], err)
		}
	}
	return errors.Join(errs...)
}

// listen binds UDP and TCP on addr's host and port; for port 0 both take the same free port.
func listen(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("k8sdns: address %q: %w", addr, err)
	}
	lc := net.ListenConfig{Control: freeBind}
	tries := 1
	if port == "0" {
		tries = portTries
	}
	for i := 0; ; i++ {
		udp, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("k8sdns: listen udp %s: %w", addr, err)
		}
		_, udpPort, _ := net.SplitHostPort(udp.LocalAddr().String())
		tcp, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, udpPort))
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if i+1 >= tries || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("k8sdns: listen tcp %s: %w", net.JoinHostPort(host, udpPort), err)
		}
	}
}

// serveUDP answers each datagram in a goroutine of its own until the socket is closed.
func (s *Server) serveUDP(ctx context.Context) {
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient read error (an ICMP-reported refusal, say): keep serving
		}
		query := append([]byte(nil), buf[:n]...)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if reply := s.answer(ctx, query, true); reply != nil {
				s.udp.WriteTo(reply, from) // a lost reply is the client's to retry, as on any UDP DNS
			}
		}()
	}
}

// serveTCP serves each connection in a goroutine of its own until the listener is closed.
func (s *Server) serveTCP(ctx context.Context) {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.mu.Lock()
		if ctx.Err() != nil { // shutting down: closeSockets may already have run
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(ctx, c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// serveConn answers the length-prefixed queries of one TCP connection in order (RFC 7766) until it closes or idles.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	var size [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(tcpIdleTimeout))
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		query := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, query); err != nil {
			return
		}
		reply := s.answer(ctx, query, false)
		if reply == nil {
			return
		}
		framed := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reply)), uint16(len(reply)))
		c.SetWriteDeadline(time.Now().Add(tcpIdleTimeout))
		if _, err := c.Write(append(framed, reply...)); err != nil {
			return
		}
	}
}

// String names the server for logs: "k8sdns on IP:PORT".
func (s *Server) String() string { return "k8sdns on " + s.Addr() }
