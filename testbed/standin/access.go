package standin

import "sort"

// globalMode is Qdrant's GlobalAccessMode.
type globalMode int

const (
	globalRead globalMode = iota
	globalManage
)

// collMode is Qdrant's CollectionAccessMode.
type collMode int

const (
	collRead        collMode = iota // "r"
	collReadWrite                   // "rw"
	collPointsWrite                 // "prw": points read-write, no extras
)

type collAccess struct {
	name string
	mode collMode
}

// access is Qdrant's rbac::Access: either global (read or manage) or a list of collections.
type access struct {
	scoped bool
	global globalMode
	colls  []collAccess
}

func fullAccess() access     { return access{global: globalManage} }
func readOnlyAccess() access { return access{global: globalRead} }

// requirements is Qdrant's AccessRequirements.
type requirements struct {
	write  bool
	manage bool
	extras bool
}

// forbidden is StorageError::Forbidden; it maps to 403 with "Forbidden: <description>".
type forbidden struct{ description string }

func (f *forbidden) Error() string { return "Forbidden: " + f.description }

func (g globalMode) meets(req requirements) error {
	if (req.write || req.manage) && g == globalRead {
		return &forbidden{"Global manage access is required"}
	}
	return nil
}

// checkGlobal is Access::check_global_access.
func (a access) checkGlobal(req requirements) error {
	if a.scoped {
		return &forbidden{"Global access is required"}
	}
	return a.global.meets(req)
}

// checkCollection is Access::check_collection_access.
func (a access) checkCollection(name string, req requirements) error {
	if !a.scoped {
		return a.global.meets(req)
	}
	for _, c := range a.colls {
		if c.name == name {
			return c.meets(req)
		}
	}
	return &forbidden{"Access to collection " + name + " is required"}
}

func (c collAccess) meets(req requirements) error {
	if req.extras && c.mode == collPointsWrite {
		return &forbidden{"Only points access is allowed for collection " + c.name}
	}
	if req.write && c.mode == collRead {
		return &forbidden{"Write access to collection " + c.name + " is required"}
	}
	if req.manage {
		return &forbidden{"Manage access for this operation is required"}
	}
	return nil
}

// visible filters collection names by the access (GET /collections, telemetry): collection-scoped access sees only
// its collections.
func (a access) visible(names []string) []string {
	if !a.scoped {
		return names
	}
	allowed := map[string]bool{}
	for _, c := range a.colls {
		allowed[c.name] = true
	}
	var out []string
	for _, n := range names {
		if allowed[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
