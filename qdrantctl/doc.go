// Package qdrantctl adapts Qdrant nodes running in Docker: it reaches the Docker Engine (docker.go is the only file
// that imports the Docker SDK) and, in later work, each node's REST API.
package qdrantctl
