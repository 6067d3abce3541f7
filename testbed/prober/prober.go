// Package prober plays a Qdrant client during a rotation: about every interval it reads the key a consumer would hold
// at that moment (from Vault's consumer path) and makes an authenticated call to every node with it, counting
// rejections. A rejection is a 401 or 403 to the key Vault published: the one thing a rotation must never cause.
package prober

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Result counts what the prober saw.
type Result struct {
	Rounds      int // times the consumer key was read
	Requests    int // authenticated calls made
	Accepted    int // 200
	Rejected    int // 401 or 403: the consumer's key was refused
	Unreachable int // no answer (a node restarting): not a rejection
	Other       int // any other status
	KeyErrors   int // the consumer key could not be read
	// Rejections describes the first rejections (node and status, never the key).
	Rejections []string
}

func (r Result) String() string {
	return fmt.Sprintf("%d rounds, %d requests: %d accepted, %d rejected, %d unreachable, %d other, %d key read errors",
		r.Rounds, r.Requests, r.Accepted, r.Rejected, r.Unreachable, r.Other, r.KeyErrors)
}

// Prober runs until Stop.
type Prober struct {
	// Key returns the key a consumer holds now.
	Key func(ctx context.Context) (string, error)
	// Nodes returns the nodes' REST base URLs now (ports may move when containers are recreated).
	Nodes    func(ctx context.Context) (map[string]string, error)
	Interval time.Duration
	// Client makes the calls (nil: a plain HTTP client); set its TLS config for HTTPS nodes.
	Client *http.Client

	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	res    Result
}

// Start begins probing in the background.
func (p *Prober) Start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.Interval)
		defer t.Stop()
		for {
			p.round(ctx, client)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (p *Prober) round(ctx context.Context, client *http.Client) {
	key, err := p.Key(ctx)
	nodes, nerr := p.Nodes(ctx)
	if ctx.Err() != nil {
		return // stopped mid-round (the read failed because Stop cancelled it): not a round, not an error
	}
	p.mu.Lock()
	p.res.Rounds++
	if err != nil || nerr != nil {
		p.res.KeyErrors++
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	for name, base := range nodes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/collections", nil)
		if err != nil {
			continue
		}
		req.Header.Set("api-key", key)
		resp, err := client.Do(req)
		p.mu.Lock()
		p.res.Requests++
		switch {
		case err != nil:
			if ctx.Err() != nil {
				p.res.Requests--
			} else {
				p.res.Unreachable++
			}
		case resp.StatusCode == http.StatusOK:
			p.res.Accepted++
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			p.res.Rejected++
			if len(p.res.Rejections) < 10 {
				p.res.Rejections = append(p.res.Rejections, fmt.Sprintf("%s %s: HTTP %d", time.Now().Format("15:04:05.000"), name, resp.StatusCode))
			}
		default:
			p.res.Other++
		}
		p.mu.Unlock()
		if resp != nil {
			resp.Body.Close()
		}
	}
}

// Stop ends probing and returns the counts.
func (p *Prober) Stop() Result {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res
}
