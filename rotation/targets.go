package rotation

// target is what one step gives a node: its slots, derived from what the node has, and the credentials it must
// then accept and refuse (401/403).
type target struct {
	step   string
	edit   func(Slots) Slots
	accept []Key
	refuse []Key
	// allAtOnce: every node moves at the same time (the emergency cut), so no peer waits for the others.
	allAtOnce bool
}

// keys drops unset keys (a deployment may have no read-only key).
func keys(ks ...Key) []Key {
	out := ks[:0:0]
	for _, k := range ks {
		if !k.IsZero() {
			out = append(out, k)
		}
	}
	return out
}

// staged: the old key primary, the new one in the alt slot; with ReadOnly, jwt_rbac on (for the bridge).
func (r *Rotator) staged(j Journal, step string) target {
	return target{step: step, edit: func(s Slots) Slots {
		s.APIKey, s.AltAPIKey = j.OldKey, j.PendingKey
		if r.opt.ReadOnly {
			s.ReadOnlyKey = j.OldReadOnly
		}
		s.JWTRBAC = s.JWTRBAC || r.usesJWT()
		return s
	}, accept: keys(j.OldKey, j.PendingKey, j.OldReadOnly)}
}

// promoted: the new key alone; with ReadOnly, the new read-only key, and the bridge still accepted.
func (r *Rotator) promoted(j Journal) target {
	t := target{step: "promote", edit: func(s Slots) Slots {
		s.APIKey, s.AltAPIKey = j.PendingKey, Key{}
		if r.opt.ReadOnly {
			s.ReadOnlyKey = j.PendingReadOnly
		}
		s.JWTRBAC = s.JWTRBAC || r.usesJWT()
		return s
	}, accept: []Key{j.PendingKey}, refuse: []Key{j.OldKey}}
	if r.opt.ReadOnly {
		t.accept = keys(j.PendingKey, j.PendingReadOnly, j.Bridge)
		t.refuse = keys(j.OldKey, j.OldReadOnly)
	}
	return t
}

// cutTarget: the emergency step, the new keys alone at once.
func (r *Rotator) cutTarget(j Journal) target {
	return target{step: "cut", edit: func(s Slots) Slots {
		s.APIKey, s.AltAPIKey = j.PendingKey, Key{}
		if r.opt.ReadOnly {
			s.ReadOnlyKey = j.PendingReadOnly
		}
		s.JWTRBAC = s.JWTRBAC || r.usesJWT()
		return s
	}, accept: keys(j.PendingKey, j.PendingReadOnly), refuse: keys(j.OldKey, j.OldReadOnly), allAtOnce: true}
}

// swapped: with enforce_internal_auth, the new key primary (what peers now send each other) and the old one in the
// alt slot (what peers not yet swapped still send), so peer traffic never breaks.
func (r *Rotator) swapped(j Journal) target {
	t := r.staged(j, "swap")
	edit := t.edit
	t.edit = func(s Slots) Slots { s = edit(s); s.APIKey, s.AltAPIKey = j.PendingKey, j.OldKey; return s }
	return t
}
