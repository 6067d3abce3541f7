package qdrantctl

import (
	"context"
	"strings"

	"github.com/qdrantrotator/rotator/rotation"
)

// logTailLines is how many of a node's last log lines a diagnosis quotes.
const logTailLines = 8

// Diagnose implements rotation.Node: what the rotator can see that explains an open node or one that will not start
// (a config file its user cannot read, no key configured where the mode keeps it), and the node's last log lines.
func (n *Node) Diagnose(ctx context.Context) rotation.Diagnosis {
	var d rotation.Diagnosis
	info, err := n.eng.Inspect(ctx, n.opt.Container)
	if err != nil {
		d.Causes = append(d.Causes, err.Error())
		return d
	}
	env := slotsFromEnv(info.Env)
	if n.opt.Mode == ModeEnv {
		if env.APIKey == "" && env.ReadOnlyAPIKey == "" {
			d.Causes = append(d.Causes, "the container's environment sets no QDRANT__SERVICE__API_KEY")
		}
	} else if path, err := n.hostConfigPath(info); err != nil {
		d.Causes = append(d.Causes, err.Error())
	} else if err := checkReadable(path, parseContainerUser(info.User)); err != nil {
		d.Causes = append(d.Causes, err.Error())
	} else if keys, err := ReadConfigKeys(path); err != nil {
		d.Causes = append(d.Causes, err.Error())
	} else if keys.APIKey == "" && keys.ReadOnlyAPIKey == "" {
		d.Causes = append(d.Causes, path+" sets no api_key")
	}
	if logs, err := n.eng.LogTail(ctx, info.ID, logTailLines); err == nil {
		for _, l := range strings.Split(strings.TrimRight(logs, "\n"), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				d.LogTail = append(d.LogTail, l)
			}
		}
	}
	return d
}
