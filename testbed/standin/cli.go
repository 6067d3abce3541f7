package standin

import (
	"fmt"
	"strings"
)

const usage = `Qdrant stand-in (behaves like Qdrant ` + Version + ` over REST for key-rotation tests)

Usage: qdrant [OPTIONS]

Options:
      --uri <URI>                     this peer's internal (p2p) URI, e.g. http://node-0:6335 (cluster mode)
                                      [env: QDRANT_URI]
      --bootstrap <URI>               internal URI of a peer of the cluster to join (cluster mode)
                                      [env: QDRANT_BOOTSTRAP]
      --config-path <PATH>            extra configuration file, merged after config/local
      --disable-telemetry             accepted and ignored
      --stacktrace                    accepted and ignored
      --reinit                        accepted and ignored
  -h, --help                          print help
  -V, --version                       print version
`

type cliArgs struct {
	configPath string
	uri        string
	bootstrap  string
	help       bool
	version    bool
}

// Qdrant's command-line options; those that take a value, and flags.
var (
	valueOptions = map[string]bool{"--uri": true, "--bootstrap": true, "--config-path": true, "--snapshot": true,
		"--storage-snapshot": true, "--force-snapshot-collection": true}
	flagOptions = map[string]bool{"--disable-telemetry": true, "--stacktrace": true, "--reinit": true,
		"--force-snapshot": true}
)

// parseArgs reads Qdrant's command line; --config-path, and in cluster mode --uri and --bootstrap, have an effect.
func parseArgs(args []string) (cliArgs, error) {
	var c cliArgs
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch a {
		case "-h", "--help":
			c.help = true
			continue
		case "-V", "--version":
			c.version = true
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		switch {
		case valueOptions[name]:
			if !hasValue {
				if i+1 >= len(args) {
					return c, fmt.Errorf("a value is required for '%s <VALUE>' but none was supplied", name)
				}
				i++
				value = args[i]
			}
			switch name {
			case "--config-path":
				c.configPath = value
			case "--uri":
				c.uri = value
			case "--bootstrap":
				c.bootstrap = value
			}
		case flagOptions[a]:
		default:
			return c, fmt.Errorf("unexpected argument '%s' found", a)
		}
	}
	return c, nil
}
