package loadclient

import (
	"errors"
	"os"
	"sync"
	"time"
)

// FileKey is a KeySource over a file another process renders (Vault Agent's template), read the way a real
// consumer reads it: a stat at most every MinInterval, a read when the file changed (another inode after an atomic
// rename, another size or modification time), and a read at once on Reload.
type FileKey struct {
	Path string
	// Parse takes the key out of the file's content.
	Parse func([]byte) (string, error)
	// MinInterval is the least time between two stats (default 5 ms).
	MinInterval time.Duration

	mu      sync.Mutex
	checked time.Time
	info    os.FileInfo
	key     string
	err     error
	reads   int
	changes int
}

// Key implements KeySource.
func (k *FileKey) Key() (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	every := k.MinInterval
	if every == 0 {
		every = 5 * time.Millisecond
	}
	if !k.checked.IsZero() && time.Since(k.checked) < every {
		return k.key, k.err
	}
	k.checked = time.Now()
	info, err := os.Stat(k.Path)
	if err != nil {
		k.err = err
		return "", err
	}
	if k.info != nil && k.err == nil && os.SameFile(k.info, info) && info.Size() == k.info.Size() && info.ModTime().Equal(k.info.ModTime()) {
		return k.key, nil
	}
	k.info = info
	return k.read()
}

// Reload implements KeySource.
func (k *FileKey) Reload() (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.checked = time.Now()
	if info, err := os.Stat(k.Path); err == nil {
		k.info = info
	}
	return k.read()
}

// read reads and parses the file; k.mu is held.
func (k *FileKey) read() (string, error) {
	k.reads++
	data, err := os.ReadFile(k.Path)
	if err == nil {
		var key string
		key, err = k.Parse(data)
		if err == nil && key == "" {
			err = errors.New("loadclient: the key file holds an empty key")
		}
		if err == nil {
			if k.key != "" && key != k.key {
				k.changes++
			}
			k.key = key
		}
	}
	k.err = err
	if err != nil {
		return "", err
	}
	return k.key, nil
}

// Counts are how often the file was read and how often the key it holds changed.
func (k *FileKey) Counts() (reads, changes int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reads, k.changes
}
