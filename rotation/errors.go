package rotation

import "errors"

// Sentinel errors that callers branch on with errors.Is; adapters wrap them.
var (
	// ErrConflict: a check-and-set write lost against a concurrent writer (the stored version moved on).
	ErrConflict = errors.New("check-and-set conflict")
	// ErrNotFound: the record does not exist (or its latest version is deleted).
	ErrNotFound = errors.New("not found")
)
