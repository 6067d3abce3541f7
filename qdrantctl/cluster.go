package qdrantctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/qdrantrotator/rotator/rotation"
)

var _ rotation.ClusterNode = (*Node)(nil)

// Cluster implements rotation.ClusterNode from Qdrant's REST API.
func (n *Node) Cluster(ctx context.Context, key rotation.Key) (rotation.ClusterView, error) {
	return n.endpoint().cluster(ctx, key)
}

// cluster reads the node's view of its cluster with key: GET /cluster (peer id, peers, raft leader, consensus
// thread), GET /collections and, per collection, its replication factor and GET /collections/{c}/cluster (replica
// states, shard transfers), and /readyz.
func (e endpoint) cluster(ctx context.Context, key rotation.Key) (rotation.ClusterView, error) {
	var v rotation.ClusterView
	base, err := e.base(ctx)
	if err != nil {
		return v, err
	}
	var cl struct {
		Result struct {
			Status   string                     `json:"status"`
			PeerID   uint64                     `json:"peer_id"`
			Peers    map[string]json.RawMessage `json:"peers"`
			RaftInfo struct {
				Leader *uint64 `json:"leader"`
			} `json:"raft_info"`
			Consensus struct {
				Status string `json:"consensus_thread_status"`
			} `json:"consensus_thread_status"`
		} `json:"result"`
	}
	if err := e.getJSON(ctx, base+"/cluster", key, &cl); err != nil {
		return v, err
	}
	if cl.Result.Status != "enabled" {
		return v, fmt.Errorf("%s: cluster mode is %q", e.label, cl.Result.Status)
	}
	v.PeerID, v.Peers = cl.Result.PeerID, len(cl.Result.Peers)
	if cl.Result.RaftInfo.Leader != nil {
		v.Leader = *cl.Result.RaftInfo.Leader
	}
	v.ConsensusOK = cl.Result.Consensus.Status == "working"

	var list struct {
		Result struct {
			Collections []struct {
				Name string `json:"name"`
			} `json:"collections"`
		} `json:"result"`
	}
	if err := e.getJSON(ctx, base+"/collections", key, &list); err != nil {
		return v, err
	}
	for _, c := range list.Result.Collections {
		cv := rotation.CollectionView{Name: c.Name}
		var info struct {
			Result struct {
				Config struct {
					Params struct {
						ReplicationFactor int `json:"replication_factor"`
					} `json:"params"`
				} `json:"config"`
			} `json:"result"`
		}
		if err := e.getJSON(ctx, base+"/collections/"+url.PathEscape(c.Name), key, &info); err != nil {
			return v, err
		}
		cv.ReplicationFactor = info.Result.Config.Params.ReplicationFactor
		if cv.ReplicationFactor == 0 {
			cv.ReplicationFactor = 1 // Qdrant's default
		}
		var sh struct {
			Result struct {
				Local []struct {
					State string `json:"state"`
				} `json:"local_shards"`
				Remote []struct {
					State string `json:"state"`
				} `json:"remote_shards"`
				Transfers []json.RawMessage `json:"shard_transfers"`
			} `json:"result"`
		}
		if err := e.getJSON(ctx, base+"/collections/"+url.PathEscape(c.Name)+"/cluster", key, &sh); err != nil {
			return v, err
		}
		for _, s := range sh.Result.Local {
			cv.States = append(cv.States, s.State)
		}
		for _, s := range sh.Result.Remote {
			cv.States = append(cv.States, s.State)
		}
		cv.Transfers = len(sh.Result.Transfers)
		v.Collections = append(v.Collections, cv)
	}
	ready, err := e.ready(ctx, base)
	if err != nil {
		return v, err
	}
	v.Ready = ready
	return v, nil
}

// getJSON makes an authenticated GET and decodes Qdrant's envelope; 401/403 wrap rotation.ErrRejected.
func (e endpoint) getJSON(ctx context.Context, u string, key rotation.Key, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", e.label, err)
	}
	req.Header.Set("api-key", key.Reveal())
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", e.label, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", e.label, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		if resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("%s: %w", e.label, rotation.ErrUnauthorized)
		}
		return fmt.Errorf("%s: HTTP %d: %w", e.label, resp.StatusCode, rotation.ErrRejected)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: GET %s: HTTP %d", e.label, req.URL.Path, resp.StatusCode)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: GET %s: %w", e.label, req.URL.Path, err)
	}
	return nil
}

// ready polls /readyz once (Qdrant's readiness check is driven by these calls).
func (e endpoint) ready(ctx context.Context, base string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return false, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("%s: %w", e.label, err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}
