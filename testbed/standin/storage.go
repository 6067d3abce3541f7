package standin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// oplogName is the append-only operation log inside storage.storage_path.
const oplogName = "standin-oplog.jsonl"

// opRecord is one line of the operation log.
type opRecord struct {
	Op         string         `json:"op"` // "create", "delete", "upsert", "gen"
	Collection string         `json:"c"`
	Vectors    *vectorsConfig `json:"vectors,omitempty"`
	Points     []storedPoint  `json:"points,omitempty"`
	// Gen identifies a cluster-mode collection (its creation commit); 0 for collections created standalone.
	Gen uint64 `json:"gen,omitempty"`
}

type collection struct {
	name    string
	gen     uint64
	vectors vectorsConfig
	points  map[pointID]*storedPoint
	// nextOp is the operation id of the next update (Qdrant's WAL sequence number).
	nextOp uint64
}

// store keeps collections in memory, backed by an append-only JSON-lines log that is replayed at start.
type store struct {
	mu          sync.Mutex
	f           *os.File
	collections map[string]*collection
}

// openStore creates the storage directory if needed, replays the log (dropping a torn last line) and opens it for
// appending.
func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create storage directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, oplogName)
	s := &store{collections: map[string]*collection{}}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read operation log %s: %w", path, err)
	}
	good := 0
	for line := 1; good < len(data); line++ {
		nl := bytes.IndexByte(data[good:], '\n')
		if nl < 0 {
			break // torn last line (crash during write): dropped
		}
		var rec opRecord
		if err := json.Unmarshal(data[good:good+nl], &rec); err != nil {
			return nil, fmt.Errorf("replay operation log %s line %d: %w", path, line, err)
		}
		s.apply(&rec)
		good += nl + 1
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open operation log %s: %w", path, err)
	}
	if good < len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, fmt.Errorf("truncate torn operation log %s: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(good), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek operation log %s: %w", path, err)
	}
	s.f = f
	return s, nil
}

func (s *store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// apply changes the in-memory state; callers hold mu (or own the store exclusively during replay).
func (s *store) apply(rec *opRecord) {
	switch rec.Op {
	case "create":
		v := vectorsConfig{}
		if rec.Vectors != nil {
			v = *rec.Vectors
		}
		s.collections[rec.Collection] = &collection{name: rec.Collection, gen: rec.Gen, vectors: v,
			points: map[pointID]*storedPoint{}}
	case "delete":
		delete(s.collections, rec.Collection)
	case "gen":
		if c, ok := s.collections[rec.Collection]; ok {
			c.gen = rec.Gen
		}
	case "upsert":
		c, ok := s.collections[rec.Collection]
		if !ok {
			return
		}
		for i := range rec.Points {
			p := rec.Points[i]
			c.points[p.ID] = &p
		}
		c.nextOp++
	}
}

// write appends a record and applies it; sync forces it to disk before returning.
func (s *store) write(rec *opRecord, sync bool) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode %s operation: %w", rec.Op, err)
	}
	line = append(line, '\n')
	if s.f == nil {
		return errors.New("storage is closed")
	}
	if _, err := s.f.Write(line); err != nil {
		return fmt.Errorf("append %s operation: %w", rec.Op, err)
	}
	if sync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("sync %s operation: %w", rec.Op, err)
		}
	}
	s.apply(rec)
	return nil
}

var (
	errCollectionExists  = errors.New("collection exists")
	errCollectionMissing = errors.New("collection missing")
)

// createCollection adds a collection (always synced, meta operations are durable when answered).
func (s *store) createCollection(name string, v vectorsConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.collections[name]; ok {
		return errCollectionExists
	}
	return s.write(&opRecord{Op: "create", Collection: name, Vectors: &v}, true)
}

// deleteCollection removes a collection and reports whether it existed.
func (s *store) deleteCollection(name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.collections[name]; !ok {
		return false, nil
	}
	return true, s.write(&opRecord{Op: "delete", Collection: name}, true)
}

// upsert validates and stores points; it returns the operation id.
func (s *store) upsert(name string, points []storedPoint, sync bool) (uint64, error) {
	return s.upsertGen(name, 0, false, points, sync, false)
}

// upsertGen is upsert for a collection that must have generation gen (when checkGen is set); normalized is true
// for points copied from another replica (their vectors are stored as given).
func (s *store) upsertGen(name string, gen uint64, checkGen bool, points []storedPoint, sync, normalized bool) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[name]
	if !ok || (checkGen && c.gen != gen) {
		return 0, errCollectionMissing
	}
	for i := range points {
		if err := c.vectors.checkVectors(points[i].Vectors); err != nil {
			return 0, err
		}
		if normalized {
			continue
		}
		for vn, vec := range points[i].Vectors {
			if p, _ := c.vectors.params(vn); p.Distance == "Cosine" {
				points[i].Vectors[vn] = normalize(vec)
			}
		}
	}
	op := c.nextOp
	return op, s.write(&opRecord{Op: "upsert", Collection: name, Points: points}, sync)
}

// collectionView is a consistent copy of what handlers need from a collection.
type collectionView struct {
	name    string
	vectors vectorsConfig
	points  []*storedPoint // sorted by id
	// shardNumber, replicationFactor and writeConsistencyFactor are the collection parameters (1 standalone).
	shardNumber, replicationFactor, writeConsistencyFactor uint32
}

func (s *store) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.collections))
	for n := range s.collections {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// view returns the collection's points sorted by id. Points are immutable once stored, so sharing them is safe.
func (s *store) view(name string) (*collectionView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[name]
	if !ok {
		return nil, false
	}
	v := &collectionView{name: name, vectors: c.vectors, points: make([]*storedPoint, 0, len(c.points)),
		shardNumber: 1, replicationFactor: 1, writeConsistencyFactor: 1}
	for _, p := range c.points {
		v.points = append(v.points, p)
	}
	sort.Slice(v.points, func(i, j int) bool { return v.points[i].ID.less(v.points[j].ID) })
	return v, true
}

// ensureCollection makes the local collection name exist with generation gen: a collection of another
// generation is replaced (dropping its points). It reports whether anything changed.
func (s *store) ensureCollection(name string, gen uint64, v vectorsConfig) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.collections[name]; ok {
		if c.gen == gen {
			return false, nil
		}
		if err := s.write(&opRecord{Op: "delete", Collection: name}, true); err != nil {
			return false, err
		}
	}
	return true, s.write(&opRecord{Op: "create", Collection: name, Vectors: &v, Gen: gen}, true)
}

// setGen gives a local collection a cluster generation, keeping its points (standalone data adopted by a new
// cluster).
func (s *store) setGen(name string, gen uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.collections[name]; !ok {
		return errCollectionMissing
	}
	return s.write(&opRecord{Op: "gen", Collection: name, Gen: gen}, true)
}

// localCollections returns the generation of every local collection.
func (s *store) localCollections() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.collections))
	for n, c := range s.collections {
		out[n] = c.gen
	}
	return out
}

// shardPoints returns the points of collection name (generation gen) for which keep is true, sorted by id.
func (s *store) shardPoints(name string, gen uint64, keep func(pointID) bool) ([]*storedPoint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[name]
	if !ok || c.gen != gen {
		return nil, false
	}
	out := []*storedPoint{}
	for id, p := range c.points {
		if keep(id) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.less(out[j].ID) })
	return out, true
}

func (s *store) count(name string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[name]
	if !ok {
		return 0, false
	}
	return len(c.points), true
}
