package enginetape

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// answerHeaders are the headers of an answer a Docker client reads; the others (Date, Content-Length, ...) are not
// kept.
var answerHeaders = []string{"Content-Type", "Api-Version", "Docker-Experimental", "Ostype", "Builder-Version"}

// Recorder is a reverse proxy to a Docker Engine that keeps every exchange.
type Recorder struct {
	client *http.Client
	base   string

	mu        sync.Mutex
	inject    Injector
	exchanges []Exchange
}

// Injector is asked about each request; when it says so, the recorder answers the request itself with that status
// and a Docker error body carrying message, and the engine never sees it.
type Injector func(method, path, query string) (status int, message string, ok bool)

// SetInjector sets (nil: clears) the injector asked about the next requests.
func (r *Recorder) SetInjector(f Injector) {
	r.mu.Lock()
	r.inject = f
	r.mu.Unlock()
}

// NewRecorder proxies to the engine at host, in DOCKER_HOST form: unix:///path or tcp://host:port.
func NewRecorder(host string) (*Recorder, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	transport := &http.Transport{DisableKeepAlives: true}
	base := "http://" + u.Host
	switch u.Scheme {
	case "unix":
		socket := u.Path
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}
		base = "http://docker"
	case "tcp":
	default:
		return nil, fmt.Errorf("docker host %q: want unix:// or tcp:// (no TLS)", host)
	}
	return &Recorder{client: &http.Client{Transport: transport}, base: base}, nil
}

// ServeHTTP implements http.Handler.
func (r *Recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	x := Exchange{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery}
	if len(body) > 0 {
		if !json.Valid(body) {
			http.Error(w, "enginetape records JSON request bodies only", http.StatusBadGateway)
			return
		}
		x.Request = compact(body)
	}
	var answer []byte
	if status, message, ok := r.injected(req); ok {
		x.Status, x.Injected = status, true
		x.Header = map[string]string{"Content-Type": "application/json"}
		answer, _ = json.Marshal(map[string]string{"message": message})
	} else {
		out, err := http.NewRequestWithContext(req.Context(), req.Method, r.base+req.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = req.Header.Clone()
		resp, err := r.client.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		answer, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		x.Status = resp.StatusCode
		for _, h := range answerHeaders {
			if v := resp.Header.Get(h); v != "" {
				if x.Header == nil {
					x.Header = map[string]string{}
				}
				x.Header[h] = v
			}
		}
	}
	if strings.HasPrefix(x.Header["Content-Type"], "application/json") && json.Valid(answer) {
		x.JSON = compact(answer)
	} else {
		x.Text = string(answer)
	}
	r.mu.Lock()
	r.exchanges = append(r.exchanges, x)
	r.mu.Unlock()
	for k, v := range x.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(x.Status)
	_, _ = w.Write(answer)
}

func (r *Recorder) injected(req *http.Request) (int, string, bool) {
	r.mu.Lock()
	f := r.inject
	r.mu.Unlock()
	if f == nil {
		return 0, "", false
	}
	return f(req.Method, req.URL.Path, req.URL.RawQuery)
}

// Take returns the exchanges recorded so far and starts a new list.
func (r *Recorder) Take() []Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	xs := r.exchanges
	r.exchanges = nil
	return xs
}

func compact(data []byte) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return json.RawMessage(data)
	}
	return b.Bytes()
}
