package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Parallel is daemon.max_parallel: how many rotations run at once across deployments.
type Parallel int

// UnmarshalYAML takes a whole number only (YAML would otherwise truncate 2.5 to 2), naming the field when it is not.
func (p *Parallel) UnmarshalYAML(n *yaml.Node) error {
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		return fmt.Errorf("line %d: daemon.max_parallel: %q is not a whole number of rotations", n.Line, n.Value)
	}
	*p = Parallel(v)
	return nil
}
