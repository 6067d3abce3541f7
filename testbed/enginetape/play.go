package enginetape

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"sync"
)

// Call is a request a Player received.
type Call struct {
	Method, Path, Query string
	Body                []byte
}

// Key identifies the request, as Exchange.Key does.
func (c Call) Key() string { return Exchange{Method: c.Method, Path: c.Path, Query: c.Query}.Key() }

// Player answers requests from a tape: each request gets the first answer not yet given to a request with the same
// method, path and query (so requests a client sends concurrently may come in any order). A request the tape has no
// answer for gets HTTP 500 and is listed by Unmatched.
type Player struct {
	mu        sync.Mutex
	queues    map[string][]Exchange
	calls     []Call
	unmatched []string
}

// NewPlayer plays t.
func NewPlayer(t *Tape) *Player {
	p := &Player{queues: map[string][]Exchange{}}
	for _, x := range t.Exchanges {
		p.queues[x.Key()] = append(p.queues[x.Key()], x)
	}
	return p
}

// ServeHTTP implements http.Handler.
func (p *Player) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	c := Call{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery, Body: body}
	p.mu.Lock()
	p.calls = append(p.calls, c)
	q := p.queues[c.Key()]
	var x Exchange
	found := len(q) > 0
	if found {
		x, p.queues[c.Key()] = q[0], q[1:]
	} else {
		p.unmatched = append(p.unmatched, c.Key())
	}
	p.mu.Unlock()
	if !found {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "enginetape: no recorded answer to " + c.Key()})
		return
	}
	for k, v := range x.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(x.Status)
	_, _ = w.Write(x.body())
}

// Calls returns the requests received, in the order they arrived.
func (p *Player) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Call(nil), p.calls...)
}

// Unmatched returns the requests the tape had no answer for.
func (p *Player) Unmatched() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unmatched...)
}

// Unused returns the recorded requests that were never made, sorted.
func (p *Player) Unused() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, q := range p.queues {
		for _, x := range q {
			out = append(out, x.Key())
		}
	}
	sort.Strings(out)
	return out
}
