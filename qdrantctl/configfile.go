package qdrantctl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// Slot names in Qdrant's `service` section.
const (
	slotAPIKey      = "api_key"
	slotAltAPIKey   = "alt_api_key"
	slotReadOnlyKey = "read_only_api_key"
	slotJWTRBAC     = "jwt_rbac"
)

// slotNames lists the slots in the order new lines are added.
var slotNames = [...]string{slotAPIKey, slotAltAPIKey, slotReadOnlyKey, slotJWTRBAC}

// truthy reads a boolean setting as Qdrant's config loader does.
func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on":
		return true
	}
	return false
}

// ConfigKeys are the key settings of a Qdrant YAML config file's `service` section; "" means absent (Qdrant treats
// an empty key as unset); JWTRBAC false means absent.
type ConfigKeys struct {
	APIKey, AltAPIKey, ReadOnlyAPIKey string
	JWTRBAC                           bool
}

// slot returns the value of a key slot ("" for jwt_rbac, which is a boolean).
func (k ConfigKeys) slot(name string) string {
	switch name {
	case slotAPIKey:
		return k.APIKey
	case slotAltAPIKey:
		return k.AltAPIKey
	case slotReadOnlyKey:
		return k.ReadOnlyAPIKey
	}
	return ""
}

// ReadConfigKeys reads the key slots of a Qdrant YAML config file. A missing file has no keys.
func ReadConfigKeys(path string) (ConfigKeys, error) {
	f, err := readNodeFile(path)
	return f.keys, err
}

// nodeFile is what the rotator reads of a node's config file, read and parsed once: its bytes (nil when it is
// missing), its key slots, its service.enforce_internal_auth, and for the security review service.enable_tls and
// audit.enabled.
type nodeFile struct {
	data         []byte
	keys         ConfigKeys
	internalAuth bool
	tls, audit   bool
}

func readNodeFile(path string) (nodeFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nodeFile{}, nil
	}
	if err != nil {
		return nodeFile{}, fmt.Errorf("read %s: %w", path, err)
	}
	f, err := parseNodeFile(data)
	if err != nil {
		return nodeFile{}, fmt.Errorf("parse %s: %w", path, err)
	}
	return f, nil
}

// parseNodeFile reads a config file's content (nil or empty: no settings).
func parseNodeFile(data []byte) (nodeFile, error) {
	top, err := topOf(data)
	if err != nil {
		return nodeFile{}, err
	}
	service := mappingValue(top, "service")
	return nodeFile{data: data, keys: keysOf(service), internalAuth: truthy(scalarValue(service, "enforce_internal_auth")),
		tls: truthy(scalarValue(service, "enable_tls")), audit: truthy(scalarValue(mappingValue(top, "audit"), "enabled"))}, nil
}

// configKeysOf reads the key slots of a config file's content (the first YAML document).
func configKeysOf(data []byte) (ConfigKeys, error) {
	service, err := serviceOf(data)
	return keysOf(service), err
}

// serviceOf returns the `service` mapping of a config file's content (nil when there is none).
func serviceOf(data []byte) (*yaml.Node, error) {
	top, err := topOf(data)
	return mappingValue(top, "service"), err
}

// topOf returns the top-level mapping of a config file's content, its first YAML document (nil when it is empty).
func topOf(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 || isEmptyNull(doc.Content[0]) { // empty file, comments only, or a bare "---"
		return nil, nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, errors.New("the top level is not a mapping")
	}
	return top, nil
}

// keysOf reads the key slots of a `service` mapping (nil: none).
func keysOf(service *yaml.Node) ConfigKeys {
	return ConfigKeys{
		APIKey:         scalarValue(service, slotAPIKey),
		AltAPIKey:      scalarValue(service, slotAltAPIKey),
		ReadOnlyAPIKey: scalarValue(service, slotReadOnlyKey),
		JWTRBAC:        truthy(scalarValue(service, slotJWTRBAC)),
	}
}

// isEmptyNull says whether n is an implicit null (nothing written at all).
func isEmptyNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && n.Value == "" && n.Anchor == "" && n.Style&yaml.TaggedStyle == 0
}

// mappingValue returns the value node of key in a mapping, if it is a mapping itself.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.MappingNode {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalarValue(m *yaml.Node, key string) string {
	if m == nil {
		return ""
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.ScalarNode && m.Content[i+1].Tag != "!!null" {
			return m.Content[i+1].Value
		}
	}
	return ""
}

// FileOwner is the owner WriteConfigKeys gives a config file it creates; -1 keeps the rotator's own id (as with
// os.Chown).
type FileOwner struct{ UID, GID int }

// WriteConfigKeys sets the key slots of a Qdrant YAML config file by splicing their values into the file's bytes
// (spliceConfigKeys): every other byte stays as it was, and writing the previous slots back gives back the
// previous file exactly, so no copy of it is kept. A file whose keys cannot be changed that way is refused with an
// error naming it and saying why, and is left untouched.
//
// The file is replaced atomically (temporary file in the same folder, fsync, rename, fsync of the folder) and keeps
// its owner, group and mode. A file that does not exist yet is created with mode 0600, owned by newFile. A
// symbolic link is followed: its target is rewritten. A successful write removes what older versions or a crash
// left beside the file: PATH.prev (it holds a retired key) and .NAME.tmp-* files.
func WriteConfigKeys(path string, keys ConfigKeys, newFile FileOwner) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	old, err := os.ReadFile(path)
	exists := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	out, err := spliceConfigKeys(old, keys)
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", path, err)
	}
	removeLeftovers(path)
	if exists && bytes.Equal(out, old) {
		return removePrevious(path)
	}
	owner := fileAttrs{uid: newFile.UID, gid: newFile.GID, mode: 0o600}
	if exists {
		if owner, err = attrsOf(path); err != nil {
			return err
		}
	}
	if err := writeAtomic(path, out, owner); err != nil {
		return err
	}
	return removePrevious(path)
}

// removeLeftovers removes the temporary files a crashed write left beside path (best effort: a file that stays is
// removed by the next write).
func removeLeftovers(path string) {
	tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+globEscape(filepath.Base(path))+".tmp-*"))
	for _, t := range tmps {
		_ = os.Remove(t)
	}
}

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// removePrevious deletes the PATH.prev copy older versions kept: it holds a retired key.
func removePrevious(path string) error {
	if err := os.Remove(path + ".prev"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the old copy %s.prev: %w", path, err)
	}
	return nil
}

// fileAttrs are the owner and permission bits of a file; uid or gid -1 means the rotator's own.
type fileAttrs struct {
	uid, gid int
	mode     os.FileMode
}

func attrsOf(path string) (fileAttrs, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileAttrs{}, fmt.Errorf("stat %s: %w", path, err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileAttrs{}, fmt.Errorf("stat %s: no owner information", path)
	}
	return fileAttrs{uid: int(sys.Uid), gid: int(sys.Gid), mode: st.Mode().Perm()}, nil
}

// writeAtomic replaces path with data: a temporary file in the same folder given the owner and mode of attrs
// (chown before chmod, which a chown may reset), fsync, rename, fsync of the folder, so a crash leaves either the
// old or the new file, never a torn one, and never one with another owner or mode.
func writeAtomic(path string, data []byte, attrs fileAttrs) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if attrs.uid != -1 && attrs.uid != os.Getuid() || attrs.gid != -1 && attrs.gid != os.Getgid() {
		if err := f.Chown(attrs.uid, attrs.gid); err != nil {
			f.Close()
			return fmt.Errorf("write %s: give it the owner %d:%d: %w", path, attrs.uid, attrs.gid, err)
		}
	}
	if err := f.Chmod(attrs.mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: give it mode %04o: %w", path, attrs.mode, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: open folder: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync folder: %w", path, err)
	}
	return nil
}

// parseDocuments parses every YAML document of data.
func parseDocuments(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, &doc)
	}
}

// containerUser is a container's configured user (Docker's Config.User: "" or "root" for root, "1000",
// "1000:1000", "1000:100", or names) as far as the host can know it: uid and gid are -1 when unknown, i.e. given
// as a name other than root, which only the image's /etc/passwd resolves, or (the gid) not given at all.
type containerUser struct {
	spec     string
	uid, gid int
}

func parseContainerUser(spec string) containerUser {
	user, group, hasGroup := strings.Cut(spec, ":")
	u := containerUser{spec: spec, uid: numericID(user), gid: -1}
	if user == "" {
		u.uid = 0
	}
	if hasGroup {
		u.gid = numericID(group)
	}
	return u
}

// numericID reads a numeric id or "root" (0); anything else is unknown (-1).
func numericID(s string) int {
	if s == "root" {
		return 0
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' || n > 1<<30 {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	if s == "" {
		return -1
	}
	return n
}

// canRead decides whether the container's user can read a file with these owner and mode bits, as the kernel
// does: uid 0 always can; the owner's bits apply to the owner, the group's to the group, the others' to the rest.
// What the host cannot know is taken at its worst: a gid not given may or may not be the file's group (both the
// group's and the others' bits must allow reading), and a user given by name may be anyone (everybody's bits must).
// Supplementary groups are not counted.
func (u containerUser) canRead(a fileAttrs) bool {
	switch {
	case u.uid == 0:
		return true
	case u.uid < 0:
		return a.mode&0o444 == 0o444
	case u.uid == a.uid:
		return a.mode&0o400 != 0
	case u.gid < 0:
		return a.mode&0o044 == 0o044
	case u.gid == a.gid:
		return a.mode&0o040 != 0
	}
	return a.mode&0o004 != 0
}

// newFileOwner is the owner a new config file gets so that the container's user can read it at mode 0600: that
// user's ids where the host knows them (root's files need no owner: root reads anything).
func (u containerUser) newFileOwner() FileOwner {
	if u.uid <= 0 {
		return FileOwner{UID: -1, GID: -1}
	}
	return FileOwner{UID: u.uid, GID: u.gid}
}

// checkReadable refuses a config file the container's user could not read: Qdrant silently drops an unreadable
// config/local.yaml and would start with no API key, accepting every request. A file not there yet is judged as
// WriteConfigKeys would create it.
func checkReadable(path string, u containerUser) error {
	a, err := attrsOf(path)
	if errors.Is(err, os.ErrNotExist) {
		o := u.newFileOwner()
		a = fileAttrs{uid: o.UID, gid: o.GID, mode: 0o600}
		if a.uid == -1 {
			a.uid = os.Getuid()
		}
		if a.gid == -1 {
			a.gid = os.Getgid()
		}
	} else if err != nil {
		return err
	}
	if u.canRead(a) {
		return nil
	}
	who := fmt.Sprintf("%q", u.spec)
	var fix string
	switch {
	case u.uid < 0:
		who += " (a name the host cannot resolve)"
		fix = fmt.Sprintf("run the container as a numeric user (user: \"UID:GID\") and chown the file to it, or let everybody read it: chmod a+r %s", path)
	case u.uid == a.uid:
		fix = "chmod u+r " + path
	case u.gid < 0:
		fix = fmt.Sprintf("chown %d %s", u.uid, path)
	default:
		fix = fmt.Sprintf("chown %d:%d %s", u.uid, u.gid, path)
	}
	return fmt.Errorf("%s (owner %d:%d, mode %04o) cannot be read by the container's user %s, and Qdrant would then start with no API key and accept every request; %s", path, a.uid, a.gid, a.mode, who, fix)
}

// checkEditable says, before anything changes, whether a rotation could rewrite the node's config file: the
// container's user can read it, and the byte-exact edit a staging restart makes (a new key in alt_api_key) is one
// the rewrite accepts.
func checkEditable(path, user string, f nodeFile) error {
	if err := checkReadable(path, parseContainerUser(user)); err != nil {
		return err
	}
	if f.data == nil {
		return nil
	}
	probe := f.keys
	probe.AltAPIKey = strings.Repeat("x", 43) // the shape of a minted key; never written
	if _, err := spliceConfigKeys(f.data, probe); err != nil {
		return fmt.Errorf("%s cannot be rewritten key by key: %w", path, err)
	}
	return nil
}

// writeNodeConfig writes keys into a node's config file, checking before and after the write that the container's
// user (Docker's Config.User) can read it.
func writeNodeConfig(path, user string, keys ConfigKeys) error {
	u := parseContainerUser(user)
	if err := checkReadable(path, u); err != nil {
		return err
	}
	if err := WriteConfigKeys(path, keys, u.newFileOwner()); err != nil {
		return err
	}
	if err := checkReadable(path, u); err != nil {
		return fmt.Errorf("after the write: %w", err)
	}
	return nil
}
