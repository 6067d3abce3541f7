package qdrantctl

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// FuzzWriteConfigKeys feeds arbitrary documents and slots to the splice. It either refuses, or:
//   - the result reads back exactly the wanted slots, with every other setting unchanged (decoded and compared);
//   - every byte outside the slots' values is unchanged (sameBytesBesideSlots, judged from the document's own
//     lines): dropping the lines of the service section's slot entries (and the section line the rotator marks as
//     its own) from the original and from the result leaves the same bytes; a slot in both keeps its line, but for
//     a new value in the same quote style in place of the old one;
//   - with U, the wanted slots plus the original slots the edit takes away (so U only adds or changes): writing U
//     and then the original slots gives back the original bytes exactly (the rollback), and writing the wanted
//     slots over U gives the same bytes as writing them over the original;
//   - taking slots away removes exactly their lines (each checked against the lines yaml.v3 gives their entries,
//     when each entry is one line), and the section the rotator added once it is empty.
//
// Errors must not show the wanted keys.
func FuzzWriteConfigKeys(f *testing.F) {
	for _, c := range spliceCases {
		f.Add([]byte(c.in), c.keys.APIKey, c.keys.AltAPIKey, c.keys.ReadOnlyAPIKey, c.keys.JWTRBAC)
		f.Add([]byte(c.want), "", c.keys.APIKey, k2, !c.keys.JWTRBAC)
	}
	f.Fuzz(func(t *testing.T, doc []byte, api, alt, ro string, jwtOn bool) {
		checkSplice(t, doc, ConfigKeys{APIKey: api, AltAPIKey: alt, ReadOnlyAPIKey: ro, JWTRBAC: jwtOn})
	})
}

// TestSpliceGenerated runs the fuzz oracle over documents assembled at random (fixed seed) from the pieces
// operators write: comments, blank lines, CRLF, indentation steps, quotes, nested sections, block scalars, flow
// collections, slots in any order and form, a BOM, a missing final line ending.
func TestSpliceGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	values := []string{k1, k2, ro1, jwt, "12345", "with space", "it's", `a"b`, "true", ""}
	refused := 0
	const n = 3000
	for i := 0; i < n; i++ {
		eol := pick("\n", "\r\n")
		step := pick("  ", "    ", "   ")
		var b strings.Builder
		if rng.IntN(8) == 0 {
			b.WriteString("\ufeff")
		}
		line := func(s string) { b.WriteString(s + eol) }
		if rng.IntN(2) == 0 {
			line("# header" + pick("", "  with words", ": clé"))
		}
		if rng.IntN(2) == 0 {
			line("")
		}
		section := func() {
			switch rng.IntN(5) {
			case 0:
				line("log_level: " + pick("INFO", "'DEBUG'") + pick("", " # level", "\t#tab"))
			case 1:
				line("storage:")
				line(step + "storage_path: ./storage" + pick("", "   # data"))
			case 2:
				line("cluster: {enabled: false}")
			case 3:
				line("note: |")
				line(step + "text")
				line("")
				line(step + "# not a comment")
			default:
				line("# a comment between sections")
			}
		}
		for j := rng.IntN(3); j > 0; j-- {
			section()
		}
		switch rng.IntN(6) {
		case 0: // no service section
		case 1:
			line("service:" + pick("", "  # empty"))
		default:
			line("service:" + pick("", " # keys"))
			entries := []string{"http_port: 6333", "enable_tls: false" + pick("", "    # off"), "tls:" + eol + step + step + "cert: a.pem",
				"hosts: [a, b]", "text: >" + eol + step + step + "folded"}
			for _, name := range slotNames {
				if rng.IntN(3) == 0 {
					continue
				}
				key := pick(name, `"`+name+`"`, "'"+name+"'")
				v := values[rng.IntN(len(values))]
				if name == slotJWTRBAC {
					v = pick("true", "false", "yes", `"true"`)
				} else if v != "" {
					switch rng.IntN(4) {
					case 0:
						v = render(v, yaml.SingleQuotedStyle)
					case 1:
						v = render(v, yaml.DoubleQuotedStyle)
					}
				}
				entries = append(entries, key+":"+pick(" ", "\t", "  ")+v+pick("", " # c", "    # spaced"))
			}
			rng.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
			for _, e := range entries[:2+rng.IntN(len(entries)-1)] {
				if rng.IntN(6) == 0 {
					line(step + "# about the next")
				}
				line(step + e)
			}
		}
		for j := rng.IntN(2); j > 0; j-- {
			section()
		}
		doc := b.String()
		if rng.IntN(5) == 0 {
			doc = strings.TrimSuffix(doc, eol)
		}
		want := ConfigKeys{JWTRBAC: rng.IntN(2) == 0}
		for _, name := range slotNames[:3] {
			if rng.IntN(3) > 0 {
				want.setSlot(name, values[rng.IntN(4)])
			}
		}
		if !checkSplice(t, []byte(doc), want) {
			refused++
			if testing.Verbose() {
				_, err := spliceConfigKeys([]byte(doc), want)
				t.Logf("%v\n%q", err, doc)
			}
		}
		if t.Failed() {
			t.Fatalf("document %d:\n%q", i, doc)
		}
	}
	t.Logf("%d documents, %d refused", n, refused)
	if refused > n/2 {
		t.Errorf("%d of %d documents refused", refused, n)
	}
}

// checkSplice is the oracle of FuzzWriteConfigKeys; it says whether the splice accepted the document.
func checkSplice(t *testing.T, doc []byte, want ConfigKeys) bool {
	t.Helper()
	out, err := spliceConfigKeys(doc, want)
	if err != nil {
		for _, k := range []string{want.APIKey, want.AltAPIKey, want.ReadOnlyAPIKey} {
			if len(k) >= 12 && !bytes.Contains(doc, []byte(k)) && strings.Contains(err.Error(), k) {
				t.Fatalf("the error shows a key: %v", err)
			}
		}
		return false
	}
	if got, err := configKeysOf(out); err != nil || got != want {
		t.Fatalf("the result reads back %+v, %v; want %+v\n%q", got, err, want, out)
	}
	if msg := sameBytesBesideSlots(doc, out, want); msg != "" {
		t.Fatalf("%s\n%q\n---\n%q", msg, doc, out)
	}
	before, err1 := settingsBesideSlots(bytes.TrimPrefix(doc, utf8BOM))
	after, err2 := settingsBesideSlots(bytes.TrimPrefix(out, utf8BOM))
	if err1 != nil || err2 != nil || !bytes.Equal(before, after) {
		t.Fatalf("settings other than the slots changed (%v, %v):\n%s\n---\n%s", err1, err2, before, after)
	}
	orig, err := configKeysOf(doc)
	if err != nil {
		t.Fatal(err)
	}
	u := want
	for _, name := range slotNames[:3] {
		if want.slot(name) == "" {
			u.setSlot(name, orig.slot(name))
		}
	}
	u.JWTRBAC = want.JWTRBAC || orig.JWTRBAC
	y, err := spliceConfigKeys(doc, u)
	if err != nil {
		t.Fatalf("adding and changing alone is refused: %v\n%q", err, doc)
	}
	if msg := sameBytesBesideSlots(doc, y, u); msg != "" {
		t.Fatalf("adding and changing: %s\n%q\n---\n%q", msg, doc, y)
	}
	back, err := spliceConfigKeys(y, orig)
	if err != nil || !bytes.Equal(back, doc) {
		t.Fatalf("the way back (%v) gives\n%q\nnot the original\n%q\nvia\n%q", err, back, doc, y)
	}
	x, err := spliceConfigKeys(y, want)
	if err != nil || !bytes.Equal(x, out) {
		t.Fatalf("writing over U (%v) gives\n%q\nnot\n%q", err, x, out)
	}
	if exp, ok := withoutSlotLines(y, want); ok && !bytes.Equal(exp, out) {
		t.Fatalf("taking slots away gives\n%q\nnot the lines removed\n%q", out, exp)
	}
	return true
}

func (k *ConfigKeys) setSlot(name, v string) {
	switch name {
	case slotAPIKey:
		k.APIKey = v
	case slotAltAPIKey:
		k.AltAPIKey = v
	case slotReadOnlyKey:
		k.ReadOnlyAPIKey = v
	}
}

// withoutSlotLines is the oracle for removal: data without the lines of the slots of its service section that
// keys does not set (and without the rotator's section if that leaves it empty). ok is false when it cannot tell:
// an entry to remove that is not exactly one line.
func withoutSlotLines(data []byte, keys ConfigKeys) ([]byte, bool) {
	body, bom := data, []byte(nil)
	if bytes.HasPrefix(body, utf8BOM) {
		body, bom = body[3:], utf8BOM
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(body, &doc); err != nil || doc.Kind == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, false
	}
	top := doc.Content[0]
	var svcKey *yaml.Node
	svc := mappingValue(top, "service")
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i+1] == svc {
			svcKey = top.Content[i]
		}
	}
	if svc == nil {
		return nil, false
	}
	lines := bytes.SplitAfter(body, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	drop := map[int]bool{}
	for i := 0; i+1 < len(svc.Content); i += 2 {
		k, v := svc.Content[i], svc.Content[i+1]
		name := k.Value
		set := name == slotJWTRBAC && keys.JWTRBAC || name != slotJWTRBAC && keys.slot(name) != ""
		if !slices.Contains(slotNames[:], name) || set {
			continue
		}
		if name == slotJWTRBAC && !truthy(v.Value) || name != slotJWTRBAC && (v.Tag == "!!null" || v.Value == "") {
			continue // an empty slot stays
		}
		if v.Line != k.Line || v.Kind != yaml.ScalarNode || v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			return nil, false
		}
		if k.Line < len(lines) { // the next line must not continue the entry
			next := string(lines[k.Line])
			t := strings.TrimLeft(next, " \t")
			if t != "" && t[0] != '#' && t[0] != '\r' && t[0] != '\n' && len(next)-len(t) > k.Column-1 {
				return nil, false
			}
		}
		drop[k.Line] = true
	}
	if len(drop) == len(svc.Content)/2 && svcKey != nil && strings.TrimRight(string(lines[svcKey.Line-1]), "\r\n") == strings.Repeat(" ", svcKey.Column-1)+sectionMarker {
		drop[svcKey.Line] = true
	}
	var out []byte
	for i, l := range lines {
		if !drop[i+1] {
			out = append(out, l...)
		}
	}
	if last := lines[len(lines)-1]; drop[len(lines)] && !bytes.HasSuffix(last, []byte("\n")) {
		out = bytes.TrimSuffix(bytes.TrimSuffix(out, []byte("\n")), []byte("\r"))
	}
	return append(append([]byte(nil), bom...), out...), true
}

// slotLayout is where a file's slots are, as its own lines tell: each line with its line ending, and for each slot
// entry of the service section its line (0-based), its value as read and the value's text with the bytes before
// and after it on the line. marker is the line of a section the rotator added (-1 if none). ok is false when a
// slot entry is not one line of its own (then the byte oracle cannot tell which bytes are the slot's).
type slotLayout struct {
	lines  []string
	slots  map[string]slotEntry
	marker int
}

type slotEntry struct {
	line                int
	value               string // "" for an empty or null value
	style               yaml.Style
	before, text, after string // the line's bytes around the value's text (text "" when it cannot be told)
}

func layoutOf(data []byte) (slotLayout, bool) {
	l := slotLayout{slots: map[string]slotEntry{}, marker: -1}
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if line != "" {
			l.lines = append(l.lines, line)
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return l, false
	}
	if doc.Kind == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return l, true
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, svc := top.Content[i], top.Content[i+1]
		if k.Value != "service" {
			continue
		}
		if content := strings.TrimRight(l.lines[k.Line-1], "\r\n"); strings.TrimLeft(content, " ") == sectionMarker {
			l.marker = k.Line - 1
		}
		if svc.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(svc.Content); j += 2 {
			key, v := svc.Content[j], svc.Content[j+1]
			if !slices.Contains(slotNames[:], key.Value) {
				continue
			}
			e := slotEntry{line: key.Line - 1, style: v.Style}
			if v.Tag != "!!null" {
				e.value = v.Value
			}
			if v.Kind != yaml.ScalarNode || v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 || e.value != "" && v.Line != key.Line {
				return l, false
			}
			if key.Line < len(l.lines) { // the next line must not continue the entry
				next := l.lines[key.Line]
				t := strings.TrimLeft(next, " \t")
				if t != "" && t[0] != '#' && t[0] != '\r' && t[0] != '\n' && len(next)-len(t) > key.Column-1 {
					return l, false
				}
			}
			line := l.lines[e.line]
			if v.Line == key.Line && e.value != "" {
				start := len(string([]rune(line)[:min(v.Column-1, utf8.RuneCountInString(line))]))
				if text := render(v.Value, v.Style&^yaml.TaggedStyle); strings.HasPrefix(line[start:], text) {
					e.before, e.text, e.after = line[:start], text, line[start+len(text):]
				}
			}
			l.slots[key.Value] = e
		}
	}
	return l, true
}

// sameBytesBesideSlots is the byte oracle of the splice from doc to out for want ("" when it holds or cannot be
// judged).
func sameBytesBesideSlots(doc, out []byte, want ConfigKeys) string {
	if bytes.HasPrefix(doc, utf8BOM) != bytes.HasPrefix(out, utf8BOM) {
		return "the byte order mark came or went"
	}
	before, ok1 := layoutOf(bytes.TrimPrefix(doc, utf8BOM))
	after, ok2 := layoutOf(bytes.TrimPrefix(out, utf8BOM))
	if !ok1 || !ok2 {
		return ""
	}
	for name, a := range before.slots {
		b, ok := after.slots[name]
		if !ok {
			continue
		}
		// A line ending may come to a last line that had none (a line added after it), never go or change.
		oldLine, newLine := before.lines[a.line], after.lines[b.line]
		oldEOL, newEOL := oldLine[len(strings.TrimRight(oldLine, "\r\n")):], newLine[len(strings.TrimRight(newLine, "\r\n")):]
		if oldEOL != "" && oldEOL != newEOL {
			return fmt.Sprintf("the line ending of service.%s changed", name)
		}
		switch {
		case a.value == b.value || name == slotJWTRBAC:
			if strings.TrimRight(oldLine, "\r\n") != strings.TrimRight(newLine, "\r\n") {
				return fmt.Sprintf("the line of service.%s changed though its value did not", name)
			}
		case a.text == "":
			return "" // a value whose text the oracle cannot find (escapes): the splice refuses to change those
		case b.value != want.slot(name):
			return fmt.Sprintf("service.%s reads %q, not the wanted value", name, b.value)
		case b.before != a.before || strings.TrimRight(b.after, "\r\n") != strings.TrimRight(a.after, "\r\n"):
			return fmt.Sprintf("the bytes around the value of service.%s changed", name)
		case b.text != render(want.slot(name), a.style&^yaml.TaggedStyle):
			return fmt.Sprintf("the new value of service.%s is not written in the old one's quote style", name)
		}
	}
	if x, y := withoutSlots(before), withoutSlots(after); x != y {
		return fmt.Sprintf("bytes beside the slot lines changed:\n%q\n---\n%q", x, y)
	}
	return ""
}

// withoutSlots is the file without its slot lines and the rotator's section line; a dropped last line without a
// line ending takes the line ending before it (as adding a line after such a line puts one there).
func withoutSlots(l slotLayout) string {
	drop := map[int]bool{l.marker: true}
	for _, e := range l.slots {
		drop[e.line] = true
	}
	var b strings.Builder
	for i, line := range l.lines {
		if !drop[i] {
			b.WriteString(line)
		}
	}
	s := b.String()
	if n := len(l.lines); n > 0 && drop[n-1] && !strings.HasSuffix(l.lines[n-1], "\n") {
		s = strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r")
	}
	return s
}

// TestByteOracle: the byte oracle of FuzzWriteConfigKeys passes exact edits and catches a changed byte elsewhere.
func TestByteOracle(t *testing.T) {
	doc := "# top\r\nservice:\r\n  http_port: 6333   # port\r\n  api_key: 'old'  # the key\r\n  jwt_rbac: true\r\nlog_level: INFO"
	want := ConfigKeys{APIKey: "new", AltAPIKey: "alt", JWTRBAC: true}
	for _, c := range []struct {
		name, out string
		ok        bool
	}{
		{"exact", "# top\r\nservice:\r\n  http_port: 6333   # port\r\n  api_key: 'new'  # the key\r\n  jwt_rbac: true\r\n  alt_api_key: alt\r\nlog_level: INFO", true},
		{"comment changed", "# top\r\nservice:\r\n  http_port: 6333   # Port\r\n  api_key: 'new'  # the key\r\n  jwt_rbac: true\r\n  alt_api_key: alt\r\nlog_level: INFO", false},
		{"comment of the slot changed", "# top\r\nservice:\r\n  http_port: 6333   # port\r\n  api_key: 'new' # the key\r\n  jwt_rbac: true\r\n  alt_api_key: alt\r\nlog_level: INFO", false},
		{"quote style changed", "# top\r\nservice:\r\n  http_port: 6333   # port\r\n  api_key: \"new\"  # the key\r\n  jwt_rbac: true\r\n  alt_api_key: alt\r\nlog_level: INFO", false},
		{"line ending changed", "# top\nservice:\r\n  http_port: 6333   # port\r\n  api_key: 'new'  # the key\r\n  jwt_rbac: true\r\n  alt_api_key: alt\r\nlog_level: INFO", false},
		{"final line ending added", "# top\r\nservice:\r\n  http_port: 6333   # port\r\n  api_key: 'new'  # the key\r\n  jwt_rbac: true\r\n  alt_api_key: alt\r\nlog_level: INFO\r\n", false},
		{"unchanged slot rewritten", "# top\r\nservice:\r\n  http_port: 6333   # port\r\n  api_key: 'new'  # the key\r\n  jwt_rbac: yes\r\n  alt_api_key: alt\r\nlog_level: INFO", false},
	} {
		if got := sameBytesBesideSlots([]byte(doc), []byte(c.out), want); (got == "") != c.ok {
			t.Errorf("%s: oracle says %q", c.name, got)
		}
	}
}
