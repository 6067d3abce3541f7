package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

var (
	hasLine      = regexp.MustCompile(`\bline \d+\b`)
	namedAnchor  = regexp.MustCompile(`anchor '([^']*)'`)
	unknownAlias = regexp.MustCompile(`unknown anchor '([^']*)' referenced`)
)

// withLine gives a YAML error the line yaml.v3 leaves out, so that every parse error names where the file is
// wrong: a byte the YAML reader refuses, the first line (yaml.v3 writes no "line 1"), or the node the decoder's
// message is about (an alias, a !!binary value, a merge key).
func withLine(data []byte, err error) error {
	if hasLine.MatchString(err.Error()) {
		return err
	}
	if line := badTextLine(data); line > 0 {
		return fmt.Errorf("line %d: %w", line, err)
	}
	root, perr := parseNodes(data)
	if perr != nil {
		if m := unknownAlias.FindStringSubmatch(perr.Error()); m != nil {
			if line := textLine(data, "*"+m[1]); line > 0 {
				return fmt.Errorf("line %d: %w", line, err)
			}
		}
		return fmt.Errorf("line 1: %w", err) // a syntax error on the first line
	}
	msg := err.Error()
	var at *yaml.Node
	switch {
	case strings.Contains(msg, "aliasing"):
		at = firstNode(root, func(n *yaml.Node) bool { return n.Kind == yaml.AliasNode })
	case namedAnchor.MatchString(msg):
		name := namedAnchor.FindStringSubmatch(msg)[1]
		at = firstNode(root, func(n *yaml.Node) bool { return n.Kind == yaml.AliasNode && n.Value == name })
	case strings.Contains(msg, "!!binary"):
		at = firstNode(root, func(n *yaml.Node) bool { return n.Tag == "!!binary" })
	case strings.Contains(msg, "merge"):
		at = firstNode(root, func(n *yaml.Node) bool { return n.Tag == "!!merge" })
	}
	if at != nil {
		return fmt.Errorf("line %d: %w", at.Line, err)
	}
	return err
}

// parseNodes parses every document of data into one node (a sequence of the documents), as far as the syntax goes.
func parseNodes(data []byte) (*yaml.Node, error) {
	all := &yaml.Node{Kind: yaml.SequenceNode}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return all, nil
		} else if err != nil {
			return nil, err
		}
		all.Content = append(all.Content, &doc)
	}
}

// firstNode is the first node of the tree (depth first, in document order) that ok accepts; aliases are not
// followed.
func firstNode(n *yaml.Node, ok func(*yaml.Node) bool) *yaml.Node {
	if ok(n) {
		return n
	}
	for _, c := range n.Content {
		if f := firstNode(c, ok); f != nil {
			return f
		}
	}
	return nil
}

// textLine is the line of the first occurrence of s in data; 0 if none.
func textLine(data []byte, s string) int {
	i := strings.Index(string(data), s)
	if i < 0 {
		return 0
	}
	return strings.Count(string(data[:i]), "\n") + 1
}

// badTextLine is the line of the first byte the YAML reader refuses without saying where (not UTF-8, or a control
// character YAML does not allow); 0 if none.
func badTextLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, w := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && w <= 1 || !yamlAllowed(r) {
			return line
		}
		if r == '\n' {
			line++
		}
		i += w
	}
	return 0
}

// yamlAllowed is the set of characters the YAML reader accepts.
func yamlAllowed(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0x7e || r == 0x85 || r >= 0xa0 && r <= 0xd7ff ||
		r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff
}
