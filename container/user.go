package container

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Credentials is who the service runs as.
type Credentials struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups
	Home     string
	Name     string
}

// resolveCredentials resolves a Spec's User and Group against the
// container's /etc/passwd and /etc/group contents (either may be nil). It
// is pure so the rules are unit-tested: a numeric id needs no entry; a
// name must exist; the primary group is the user's unless Group is set.
func resolveCredentials(user, group string, passwd, groupFile io.Reader) (Credentials, error) {
	c := Credentials{Home: "/", Name: "root"}
	if user == "" && group == "" {
		return c, nil
	}
	users := parseColonFile(passwd, 7)
	groups := parseColonFile(groupFile, 4)
	if user != "" {
		var entry []string
		if id, err := strconv.ParseUint(user, 10, 32); err == nil {
			c.UID, c.GID, c.Name = uint32(id), uint32(id), user
			for _, u := range users {
				if u[2] == user {
					entry = u
					break
				}
			}
		} else {
			for _, u := range users {
				if u[0] == user {
					entry = u
					break
				}
			}
			if entry == nil {
				return c, fmt.Errorf("user %q not found in /etc/passwd", user)
			}
		}
		if entry != nil {
			uid, err1 := strconv.ParseUint(entry[2], 10, 32)
			gid, err2 := strconv.ParseUint(entry[3], 10, 32)
			if err1 != nil || err2 != nil {
				return c, fmt.Errorf("bad /etc/passwd entry for %q", entry[0])
			}
			c.UID, c.GID, c.Name, c.Home = uint32(uid), uint32(gid), entry[0], entry[5]
			if c.Home == "" {
				c.Home = "/"
			}
		}
	}
	if group != "" {
		if id, err := strconv.ParseUint(group, 10, 32); err == nil {
			c.GID = uint32(id)
		} else {
			found := false
			for _, g := range groups {
				if g[0] == group {
					id, err := strconv.ParseUint(g[2], 10, 32)
					if err != nil {
						return c, fmt.Errorf("bad /etc/group entry for %q", group)
					}
					c.GID, found = uint32(id), true
					break
				}
			}
			if !found {
				return c, fmt.Errorf("group %q not found in /etc/group", group)
			}
		}
	}
	c.Groups = []uint32{c.GID}
	for _, g := range groups {
		for _, m := range strings.Split(g[3], ",") {
			if m != "" && m == c.Name {
				if id, err := strconv.ParseUint(g[2], 10, 32); err == nil && uint32(id) != c.GID {
					c.Groups = append(c.Groups, uint32(id))
				}
			}
		}
	}
	return c, nil
}

// parseColonFile reads passwd/group style lines with at least n fields.
func parseColonFile(r io.Reader, n int) [][]string {
	if r == nil {
		return nil
	}
	var out [][]string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < n {
			continue
		}
		out = append(out, f)
	}
	return out
}
