package qdrantctl

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// sectionMarker ends the `service:` line of a section the rotator added to a file that had none; such a section
// is removed again once it holds no key, so adding and then removing the keys gives back the file it was.
const sectionMarker = "service: # added by qdrant-rotator"

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// spliceConfigKeys returns data with the key slots of its `service` section set to keys, and every other byte as it
// was: comments, blank lines, line endings, indentation, quoting, key order. yaml.v3 only locates the slot values
// (line and column); the edit replaces their bytes, keeping each value's quote style, removes the line(s) of a slot
// that goes, and adds a line for a slot that comes, after the section's last entry with the section's indentation
// and the file's line ending. A file with no `service` section gets one at its end, marked (sectionMarker) so that
// it goes again with its last key. Hence writing A's slots back over B gives back A byte for byte when B only added
// or changed slots (a rollback); a removed slot that comes back is added as the section's last entry.
//
// A slot set but empty (or jwt_rbac: false) counts as absent and is left as it is while it stays so; making it
// non-empty is refused (the way back would not be exact). What cannot be edited exactly is refused with an error
// that says why and how to write the file instead: several documents, a top level or `service` that is not a block
// mapping, a `service` reached through an alias or merge key, a slot value with an anchor or tag, a block scalar,
// a value written over several lines or with escapes, duplicate keys, line breaks other than LF and CRLF, text that
// is not UTF-8. The result is parsed again and must read back exactly keys, with every other value unchanged.
// Errors never contain a key.
func spliceConfigKeys(data []byte, keys ConfigKeys) ([]byte, error) {
	var bom []byte
	if bytes.HasPrefix(data, utf8BOM) {
		bom, data = utf8BOM, data[len(utf8BOM):]
	}
	if err := checkText(data); err != nil {
		return nil, err
	}
	docs, err := parseDocuments(data)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if len(docs) > 1 {
		return nil, fmt.Errorf("it holds %d YAML documents, and Qdrant reads a config file of exactly one; keep one", len(docs))
	}
	if _, err := settingsBesideSlots(data); err != nil { // duplicate keys, alias bombs
		return nil, fmt.Errorf("parse: %w", err)
	}
	var top *yaml.Node
	if len(docs) == 1 && !isEmptyNull(docs[0].Content[0]) {
		top = docs[0].Content[0]
	}
	s := newSource(data)
	edits, err := s.plan(top, aliasTargets(docs), keys)
	if err != nil {
		return nil, err
	}
	out, err := s.apply(edits)
	if err != nil {
		return nil, err
	}
	if err := verifySplice(data, out, keys); err != nil {
		return nil, err
	}
	return append(append([]byte(nil), bom...), out...), nil
}

// checkText refuses what would make yaml.v3's line numbers differ from the file's lines.
func checkText(data []byte) error {
	if !utf8.Valid(data) {
		return errors.New("it is not UTF-8 text; save it as UTF-8")
	}
	for i, c := range data {
		if c == '\r' && (i+1 == len(data) || data[i+1] != '\n') {
			return errors.New("it has a carriage return that does not end a CRLF line; use LF or CRLF line endings")
		}
	}
	if bytes.ContainsAny(data, "\u0085\u2028\u2029") {
		return errors.New("it has a Unicode line or paragraph separator (U+0085, U+2028, U+2029), which YAML reads as a line break; use LF or CRLF line endings")
	}
	return nil
}

// checkNewKey refuses a key that one line of YAML cannot hold.
func checkNewKey(name, key string) error {
	if strings.ContainsFunc(key, func(r rune) bool {
		return r < 0x20 && r != '\t' || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 || r == 0xFEFF || r == utf8.RuneError
	}) {
		return fmt.Errorf("the new value of service.%s has a line break or a control character", name)
	}
	return nil
}

// aliasTargets returns the nodes some alias refers to.
func aliasTargets(docs []*yaml.Node) map[*yaml.Node]bool {
	t := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			t[n.Alias] = true
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	for _, d := range docs {
		walk(d)
	}
	return t
}

// source is the file's bytes with the offset of each line, to turn yaml.v3's marks (1-based line, column in runes)
// into byte offsets. Lines end with LF or CRLF (checkText refuses other breaks).
type source struct {
	b      []byte
	starts []int // starts[i] is where line i+1 begins
}

func newSource(b []byte) *source {
	s := &source{b: b, starts: []int{0}}
	for i, c := range b {
		if c == '\n' {
			s.starts = append(s.starts, i+1)
		}
	}
	return s
}

func (s *source) lines() int { return len(s.starts) }

// lineEnd is the offset just after line l's line ending.
func (s *source) lineEnd(l int) int {
	if l < len(s.starts) {
		return s.starts[l]
	}
	return len(s.b)
}

// contentEnd is the offset of line l's line ending.
func (s *source) contentEnd(l int) int {
	start, end := s.starts[l-1], s.lineEnd(l)
	if end > start && s.b[end-1] == '\n' {
		end--
		if end > start && s.b[end-1] == '\r' {
			end--
		}
	}
	return end
}

func (s *source) content(l int) string { return string(s.b[s.starts[l-1]:s.contentEnd(l)]) }

func (s *source) eol(l int) string { return string(s.b[s.contentEnd(l):s.lineEnd(l)]) }

// eolFor is the line ending for a line added after line l: l's own, else the file's first, else LF.
func (s *source) eolFor(l int) string {
	if e := s.eol(l); e != "" {
		return e
	}
	for i := 1; i <= s.lines(); i++ {
		if e := s.eol(i); e != "" {
			return e
		}
	}
	return "\n"
}

// offset turns a yaml.v3 mark into a byte offset.
func (s *source) offset(line, col int) (int, bool) {
	if line < 1 || line > s.lines() || col < 1 {
		return 0, false
	}
	p, end := s.starts[line-1], s.contentEnd(line)
	for i := 1; i < col; i++ {
		if p >= end {
			return 0, false
		}
		_, w := utf8.DecodeRune(s.b[p:end])
		p += w
	}
	return p, true
}

// indent returns the blanks before node n when n is the first thing on its line.
func (s *source) indent(n *yaml.Node) (string, bool) {
	p, ok := s.offset(n.Line, n.Column)
	if !ok {
		return "", false
	}
	pre := string(s.b[s.starts[n.Line-1]:p])
	return pre, strings.Trim(pre, " \t") == ""
}

// edit replaces b[start:end] with text.
type edit struct {
	start, end int
	text       string
}

func (s *source) apply(edits []edit) ([]byte, error) {
	slices.SortStableFunc(edits, func(a, b edit) int {
		if a.start != b.start {
			return a.start - b.start
		}
		return a.end - b.end
	})
	var out bytes.Buffer
	at := 0
	for _, e := range edits {
		if e.start < at {
			return nil, errors.New("the edits of the key slots overlap; write each slot on a line of its own")
		}
		out.Write(s.b[at:e.start])
		out.WriteString(e.text)
		at = e.end
	}
	out.Write(s.b[at:])
	return out.Bytes(), nil
}

// insertAfter adds lines after line l.
func (s *source) insertAfter(l int, lines []string) edit {
	eol, at := s.eolFor(l), s.lineEnd(l)
	var b strings.Builder
	for _, line := range lines {
		if s.eol(l) == "" { // l is the last line and has no line ending: neither will the added ones
			b.WriteString(eol + line)
		} else {
			b.WriteString(line + eol)
		}
	}
	return edit{start: at, end: at, text: b.String()}
}

// appendLines adds lines at the end of the file.
func (s *source) appendLines(lines []string) edit {
	last := s.lines()
	if s.content(last) == "" && last > 1 { // the file ends with a line ending
		return s.insertAfter(last-1, lines)
	}
	if len(s.b) == 0 {
		return edit{text: strings.Join(lines, "\n") + "\n"}
	}
	return s.insertAfter(last, lines)
}

// removeLines removes whole lines: a line with its line ending, a last line without one with the line ending
// before it (the inverse of insertAfter).
func (s *source) removeLines(set map[int]bool) []edit {
	var edits []edit
	for l := 1; l <= s.lines(); l++ {
		if !set[l] {
			continue
		}
		a := l
		for set[l+1] {
			l++
		}
		switch {
		case s.eol(l) != "":
			edits = append(edits, edit{start: s.starts[a-1], end: s.lineEnd(l)})
		case a > 1:
			edits = append(edits, edit{start: s.contentEnd(a - 1), end: s.lineEnd(l)})
		default:
			edits = append(edits, edit{start: 0, end: s.lineEnd(l)})
		}
	}
	return edits
}

// scalarExtent returns the bytes of a scalar written on one line without anchor or tag, and whether it is one.
func (s *source) scalarExtent(n *yaml.Node) (start, end int, ok bool) {
	if n.Kind != yaml.ScalarNode || n.Anchor != "" || n.Style&yaml.TaggedStyle != 0 {
		return 0, 0, false
	}
	start, ok = s.offset(n.Line, n.Column)
	if !ok {
		return 0, 0, false
	}
	stop := s.contentEnd(n.Line)
	switch n.Style {
	case 0:
		end = start + len(n.Value)
		if end > stop || string(s.b[start:end]) != n.Value {
			return 0, 0, false
		}
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		q := s.b[start]
		for i := start + 1; i < stop && end == 0; i++ {
			switch {
			case q == '"' && s.b[i] == '\\':
				i++
			case s.b[i] == q && q == '\'' && i+1 < stop && s.b[i+1] == '\'':
				i++
			case s.b[i] == q:
				end = i + 1
			}
		}
		if end == 0 {
			return 0, 0, false
		}
	default:
		return 0, 0, false
	}
	rest := strings.TrimLeft(string(s.b[end:stop]), " \t")
	if rest != "" && (rest[0] != '#' || end == stop-len(rest)) {
		return 0, 0, false
	}
	return start, end, true
}

// entryEnd returns the last line of a mapping entry whose key starts its line: the value's line for a one-line
// scalar, else the last line below it indented deeper than the key (comment lines as deep as the key or less, and
// blank lines, are not the entry's), before the line of the next key (next; 0 for the last entry).
func (s *source) entryEnd(key, value *yaml.Node, next int) int {
	end := max(key.Line, value.Line)
	if _, _, ok := s.scalarExtent(value); ok {
		return end
	}
	limit := s.lines()
	if next > 0 {
		limit = next - 1
	}
	for l := end + 1; l <= limit; l++ {
		c := s.content(l)
		t := strings.TrimLeft(c, " \t")
		if t == "" {
			continue
		}
		if len(c)-len(t) <= key.Column-1 {
			if t[0] == '#' {
				continue
			}
			break
		}
		end = l
	}
	return end
}

// render writes a value in a scalar style: plain, 'single' or "double" quoted (no escapes but \\ and \").
func render(v string, style yaml.Style) string {
	switch style {
	case yaml.SingleQuotedStyle:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case yaml.DoubleQuotedStyle:
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
	}
	return v
}

// plainSafe says whether v written plain reads back as the string v.
func plainSafe(v string) bool {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("k: "+v+"\n"), &doc); err != nil || doc.Kind != yaml.DocumentNode {
		return false
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode || len(m.Content) != 2 {
		return false
	}
	n := m.Content[1]
	return n.Kind == yaml.ScalarNode && n.Style == 0 && n.Tag == "!!str" && n.Value == v
}

// slotLines are the lines added for the slots of names that keys sets, in order: each key plain, or double-quoted
// when plain would not read back as the key.
func slotLines(indent string, names []string, keys ConfigKeys) ([]string, error) {
	var lines []string
	for _, name := range names {
		switch {
		case !wanted(name, keys):
		case name == slotJWTRBAC:
			lines = append(lines, indent+name+": true")
		default:
			v := keys.slot(name)
			if err := checkNewKey(name, v); err != nil {
				return nil, err
			}
			if !plainSafe(v) {
				v = render(v, yaml.DoubleQuotedStyle)
			}
			lines = append(lines, indent+name+": "+v)
		}
	}
	return lines, nil
}

// wanted says whether keys sets the slot.
func wanted(name string, keys ConfigKeys) bool {
	if name == slotJWTRBAC {
		return keys.JWTRBAC
	}
	return keys.slot(name) != ""
}

// plan computes the edits that give the top-level mapping top (nil: an empty document) the slots of keys.
func (s *source) plan(top *yaml.Node, aliased map[*yaml.Node]bool, keys ConfigKeys) ([]edit, error) {
	if top == nil {
		return s.appendSection("", "  ", keys)
	}
	if top.Kind != yaml.MappingNode {
		return nil, errors.New("the top level is not a mapping")
	}
	if top.Style&yaml.FlowStyle != 0 {
		return nil, errors.New("the top level is a flow mapping ({...}); write it as a block mapping (one key: value per line)")
	}
	var svcKey, svcVal *yaml.Node
	merge := false
	for i := 0; i+1 < len(top.Content); i += 2 {
		k := top.Content[i]
		switch {
		case k.Kind == yaml.AliasNode:
			return nil, fmt.Errorf("the top-level key at line %d is an alias (*%s); write the key out", k.Line, k.Value)
		case k.Tag == "!!merge":
			merge = true
		case k.Kind == yaml.ScalarNode && k.Value == "service":
			if svcKey != nil {
				return nil, fmt.Errorf("service appears twice (lines %d and %d); keep one", svcKey.Line, k.Line)
			}
			svcKey, svcVal = k, top.Content[i+1]
		}
	}
	topIndent, ok := s.indent(top.Content[0])
	if !ok {
		return nil, fmt.Errorf("the first top-level key (line %d) does not start its line", top.Content[0].Line)
	}
	step := indentStep(top)
	if svcKey == nil {
		if merge {
			return nil, errors.New("the top level has a merge key (<<), which may bring in a service section; write the service section out in this file")
		}
		return s.appendSection(topIndent, step, keys)
	}
	if _, ok := s.indent(svcKey); !ok {
		return nil, fmt.Errorf("the service key (line %d) does not start its line", svcKey.Line)
	}
	switch {
	case svcVal.Kind == yaml.AliasNode:
		return nil, fmt.Errorf("the service section (line %d) is an alias (*%s) of a section elsewhere in the file; write it out as a block mapping of its own", svcKey.Line, svcVal.Value)
	case isEmptyNull(svcVal):
		if s.content(svcKey.Line) == topIndent+sectionMarker {
			return nil, fmt.Errorf("the service section (line %d) is empty and marked as added by qdrant-rotator; delete that line", svcKey.Line)
		}
		add, err := slotLines(topIndent+step, slotNames[:], keys)
		if err != nil || len(add) == 0 {
			return nil, err
		}
		return []edit{s.insertAfter(svcKey.Line, add)}, nil
	case svcVal.Kind != yaml.MappingNode:
		return nil, fmt.Errorf("service (line %d) is not a mapping; write it as a block mapping (service: then one indented key: value per line), or leave it empty", svcKey.Line)
	case svcVal.Style&yaml.FlowStyle != 0:
		return nil, fmt.Errorf("the service section (line %d) is a flow mapping ({...}); write it as a block mapping (one key: value per line), or delete it and let the rotator add one", svcKey.Line)
	case aliased[svcVal]:
		return nil, fmt.Errorf("the service section (line %d) has an anchor (&%s) that an alias elsewhere refers to, so editing it would edit that too; write the other place out", svcKey.Line, svcVal.Anchor)
	}
	return s.planSection(svcKey, svcVal, aliased, keys)
}

// planSection edits the slots of a block mapping `service` section.
func (s *source) planSection(svcKey, svc *yaml.Node, aliased map[*yaml.Node]bool, keys ConfigKeys) ([]edit, error) {
	entries := map[string]int{}
	for i := 0; i+1 < len(svc.Content); i += 2 {
		k := svc.Content[i]
		switch {
		case k.Kind == yaml.AliasNode:
			return nil, fmt.Errorf("a key of the service section (line %d) is an alias (*%s); write the key out", k.Line, k.Value)
		case k.Tag == "!!merge":
			return nil, fmt.Errorf("the service section has a merge key (<<, line %d), which may bring in key slots; write the settings out in the section", k.Line)
		}
		if _, ok := s.indent(k); !ok {
			return nil, fmt.Errorf("the service key at line %d does not start its line (write one key: value per line)", k.Line)
		}
		if k.Kind != yaml.ScalarNode || !slices.Contains(slotNames[:], k.Value) {
			continue
		}
		if j, dup := entries[k.Value]; dup {
			return nil, fmt.Errorf("service.%s appears twice (lines %d and %d); keep one", k.Value, svc.Content[j].Line, k.Line)
		}
		entries[k.Value] = i
	}
	nextLine := func(i int) int {
		if i+2 < len(svc.Content) {
			return svc.Content[i+2].Line
		}
		return 0
	}
	last := len(svc.Content) - 2
	indent, _ := s.indent(svc.Content[0])
	var edits []edit
	var absent []string
	remove := map[int]bool{}
	removed := 0
	for _, name := range slotNames {
		i, present := entries[name]
		if !present {
			absent = append(absent, name)
			continue
		}
		k, v := svc.Content[i], svc.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("service.%s (line %d) is not a single value; write it as %s: VALUE", name, k.Line, name)
		}
		var cur string
		if v.Tag != "!!null" {
			cur = v.Value
		}
		switch {
		case name == slotJWTRBAC && truthy(cur) == keys.JWTRBAC,
			name != slotJWTRBAC && cur == keys.slot(name):
			continue // already so
		case !wanted(name, keys):
			if aliased[v] {
				return nil, fmt.Errorf("service.%s (line %d) has an anchor (&%s) that an alias refers to; write the other place out", name, k.Line, v.Anchor)
			}
			for l := k.Line; l <= s.entryEnd(k, v, nextLine(i)); l++ {
				remove[l] = true
			}
			removed++
			continue
		case name == slotJWTRBAC:
			return nil, fmt.Errorf("service.jwt_rbac is set off (line %d); delete that line (off is Qdrant's default) so that the rotator can add it and take it away again", k.Line)
		case cur == "":
			return nil, fmt.Errorf("service.%s is set but empty (line %d), which Qdrant treats as unset; delete that line so that the rotator can add it and take it away again", name, k.Line)
		}
		e, err := s.replaceValue(name, k, v, aliased, keys.slot(name))
		if err != nil {
			return nil, err
		}
		edits = append(edits, e)
	}
	add, err := slotLines(indent, absent, keys)
	if err != nil {
		return nil, err
	}
	end := s.entryEnd(svc.Content[last], svc.Content[last+1], 0)
	if len(add) > 0 {
		edits = append(edits, s.insertAfter(end, add))
	}
	if removed == len(svc.Content)/2 && len(add) == 0 {
		if topIndent, _ := s.indent(svcKey); s.content(svcKey.Line) == topIndent+sectionMarker {
			remove[svcKey.Line] = true // the section the rotator added, now empty
		}
	}
	return append(edits, s.removeLines(remove)...), nil
}

// replaceValue replaces the bytes of a slot's current value (v, a key) with the new key in the same quote style.
func (s *source) replaceValue(name string, k, v *yaml.Node, aliased map[*yaml.Node]bool, key string) (edit, error) {
	switch {
	case v.Anchor != "" || v.Style&yaml.TaggedStyle != 0:
		return edit{}, fmt.Errorf("service.%s (line %d) has an anchor or a tag; write it as %s: KEY", name, k.Line, name)
	case v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return edit{}, fmt.Errorf("service.%s (line %d) is a block scalar (| or >); write the key on the key's line: %s: KEY", name, k.Line, name)
	}
	if v.Tag != "!!str" {
		return edit{}, fmt.Errorf("service.%s (line %d) is not text but a %s written plain, which the rotator could not write back as it is; put it in quotes", name, k.Line, strings.TrimPrefix(v.Tag, "!!"))
	}
	start, end, ok := s.scalarExtent(v)
	if !ok {
		return edit{}, fmt.Errorf("service.%s (line %d) is written over several lines; write the key on one line: %s: KEY", name, k.Line, name)
	}
	if string(s.b[start:end]) != render(v.Value, v.Style) {
		return edit{}, fmt.Errorf("service.%s (line %d) is written with escapes, which the rotator could not write back as they are; write it plain or in quotes without escapes", name, k.Line)
	}
	if err := checkNewKey(name, key); err != nil {
		return edit{}, err
	}
	if v.Style == 0 && !plainSafe(key) {
		return edit{}, fmt.Errorf("service.%s (line %d): the new key written plain would not read back as text; put the current key in quotes", name, k.Line)
	}
	return edit{start: start, end: end, text: render(key, v.Style)}, nil
}

// appendSection adds a marked service section with the slots of keys at the end of the file.
func (s *source) appendSection(topIndent, step string, keys ConfigKeys) ([]edit, error) {
	add, err := slotLines(topIndent+step, slotNames[:], keys)
	if err != nil || len(add) == 0 {
		return nil, err
	}
	lines := append([]string{topIndent + sectionMarker}, add...)
	for l := s.lines(); l >= 1; l-- {
		t := strings.TrimSpace(s.content(l))
		if t == "" || t[0] == '#' {
			continue
		}
		if t == "..." || strings.HasPrefix(t, "... ") || strings.HasPrefix(t, "...\t") {
			return nil, fmt.Errorf("it has no service section and ends with a document end marker (..., line %d); add the section before it, or remove the marker", l)
		}
		break
	}
	return []edit{s.appendLines(lines)}, nil
}

// indentStep is how much deeper than its key the file indents a nested block mapping (two spaces if none tells).
func indentStep(top *yaml.Node) string {
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if v.Kind == yaml.MappingNode && v.Style&yaml.FlowStyle == 0 && len(v.Content) > 0 && v.Content[0].Line > k.Line && v.Content[0].Column > k.Column {
			return strings.Repeat(" ", v.Content[0].Column-k.Column)
		}
	}
	return "  "
}

// verifySplice parses the edited file again: it must be one document whose slots read back exactly keys (each key a
// string), and whose settings other than the slots are those of the original.
func verifySplice(orig, out []byte, keys ConfigKeys) error {
	const refuse = "checking the edit: "
	docs, err := parseDocuments(out)
	if err != nil {
		return fmt.Errorf(refuse+"the edited file would not parse (%w)", err)
	}
	if len(docs) > 1 {
		return errors.New(refuse + "the edited file would hold several YAML documents")
	}
	had, err := configKeysOf(orig)
	if err != nil {
		return fmt.Errorf(refuse+"%w", err)
	}
	got, err := configKeysOf(out)
	if err != nil || got != keys || !slotsAreStrings(docs, had) {
		return errors.New(refuse + "the edited file would not read back the intended key slots")
	}
	a, err := settingsBesideSlots(orig)
	if err != nil {
		return fmt.Errorf(refuse+"%w", err)
	}
	b, err := settingsBesideSlots(out)
	if err != nil {
		return fmt.Errorf(refuse+"the edited file would not decode (%w)", err)
	}
	if !bytes.Equal(a, b) {
		return errors.New(refuse + "the edit would change settings other than the key slots")
	}
	return nil
}

// slotsAreStrings checks that the key slots of the service section that differ from had are strings (a plain 123
// would be an integer).
func slotsAreStrings(docs []*yaml.Node, had ConfigKeys) bool {
	if len(docs) == 0 {
		return true
	}
	svc := mappingValue(docs[0].Content[0], "service")
	if svc == nil {
		return true
	}
	for i := 0; i+1 < len(svc.Content); i += 2 {
		k, v := svc.Content[i].Value, svc.Content[i+1]
		if slices.Contains(slotNames[:3], k) && v.Value != had.slot(k) && v.Tag != "!!str" && v.Tag != "!!null" {
			return false
		}
	}
	return true
}

// settingsBesideSlots decodes a config file without the key slots of its service section (and without the section
// when nothing else is in it) and marshals that, to compare the settings of two files; nil for no settings at all.
func settingsBesideSlots(data []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 {
		return nil, nil
	}
	if top := doc.Content[0]; top.Kind == yaml.MappingNode {
		var kept []*yaml.Node
		for i := 0; i+1 < len(top.Content); i += 2 {
			k, v := top.Content[i], top.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Value == "service" && k.Tag != "!!merge" {
				if v.Kind == yaml.MappingNode {
					c := *v
					c.Content = nil
					for j := 0; j+1 < len(v.Content); j += 2 {
						if !slices.Contains(slotNames[:], v.Content[j].Value) {
							c.Content = append(c.Content, v.Content[j], v.Content[j+1])
						}
					}
					v = &c
				}
				if v.Kind == yaml.MappingNode && len(v.Content) == 0 || v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
					continue
				}
			}
			kept = append(kept, k, v)
		}
		if len(kept) == 0 {
			return nil, nil
		}
		t := *top
		t.Content = kept
		doc.Content[0] = &t
	}
	var v any
	if err := doc.Decode(&v); err != nil {
		return nil, err
	}
	if v == nil {
		return nil, nil
	}
	return yaml.Marshal(v)
}
