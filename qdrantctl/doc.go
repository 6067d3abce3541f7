// Package qdrantctl implements rotation.Node (and rotation.ClusterNode) for Qdrant nodes running in Docker
// containers. A Node puts keys on its container in one of two modes: env recreates the container with only its
// QDRANT__SERVICE__*API_KEY variables changed (Engine.Recreate, crash-safe by renaming the old container aside and
// removing it only once the new one has started); file rewrites the host-mounted Qdrant config file byte-exactly,
// keeping its owner and mode, and restarts the container. It checks keys with authenticated calls to the node's REST
// API (never following redirects), reads the peer, replica and internal-auth state of a cluster from that API, and
// diagnoses a node that is open or will not start.
//
// docker.go is the only file that imports the Docker SDK: the Engine holds the few SDK calls it makes behind a small
// interface. The test bed's own Docker operations live in testbed/dockerbed.
package qdrantctl
