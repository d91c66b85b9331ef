package assemble

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nosproject/nos/guestapi"
)

// resolveUser resolves an image user, as OCI images and docker write it
// ("name", "uid", "name:group", "uid:gid", "uid:group"...), against the
// image's /etc/passwd and /etc/group contents. "" and "root" give nil, the
// init's default. A user named but missing from passwd is an error; a
// numeric one need not be listed, and then runs with group 0 as in docker.
// Supplementary groups are those /etc/group lists the user in.
func resolveUser(spec string, passwd, group []byte) (*guestapi.User, error) {
	if spec == "" {
		return nil, nil
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return nil, fmt.Errorf("user %q: want USER[:GROUP], by name or number: %w", spec, ErrBadSource)
	}
	u := &guestapi.User{}
	name := ""
	if n, ok := parseID(userPart); ok {
		u.UID = n
		if e := findEntry(passwd, func(f []string) bool { return f[2] == userPart }, 7); e != nil {
			name = e[0]
			u.GID, _ = parseID(e[3])
		}
	} else {
		e := findEntry(passwd, func(f []string) bool { return f[0] == userPart }, 7)
		if e == nil {
			return nil, fmt.Errorf("user %q is not in the image's /etc/passwd: give a number, or add the user: %w", userPart, ErrBadSource)
		}
		uid, ok1 := parseID(e[2])
		gid, ok2 := parseID(e[3])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("user %q: bad /etc/passwd entry: %w", userPart, ErrBadSource)
		}
		name, u.UID, u.GID = userPart, uid, gid
	}
	if hasGroup {
		if n, ok := parseID(groupPart); ok {
			u.GID = n
		} else {
			e := findEntry(group, func(f []string) bool { return f[0] == groupPart }, 3)
			gid, ok := uint32(0), false
			if e != nil {
				gid, ok = parseID(e[2])
			}
			if !ok {
				return nil, fmt.Errorf("group %q is not in the image's /etc/group: give a number, or add the group: %w", groupPart, ErrBadSource)
			}
			u.GID = gid
		}
	}
	if name != "" {
		sc := bufio.NewScanner(bytes.NewReader(group))
		for sc.Scan() {
			f := strings.Split(sc.Text(), ":")
			if len(f) < 4 || !slices.Contains(strings.Split(f[3], ","), name) {
				continue
			}
			if g, ok := parseID(f[2]); ok && g != u.GID && !slices.Contains(u.Groups, g) {
				u.Groups = append(u.Groups, g)
			}
		}
		slices.Sort(u.Groups)
	}
	if u.UID == 0 && u.GID == 0 && len(u.Groups) == 0 {
		return nil, nil
	}
	return u, nil
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// findEntry returns the fields of the first line of a colon-separated
// file with at least min fields that match.
func findEntry(data []byte, match func([]string) bool, min int) []string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) >= min && match(f) {
			return f
		}
	}
	return nil
}
