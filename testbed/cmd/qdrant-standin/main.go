// Command qdrant-standin runs the Qdrant stand-in (see package standin).
package main

import (
	"os"

	"github.com/qdrantrotator/rotator/testbed/standin"
)

func main() { os.Exit(standin.Main(os.Args[1:], os.Environ())) }
