package registry

import (
	"regexp"
	"strconv"
	"strings"
)

// ValidateCrateName applies Cargo's rules for crate names on registries:
// 1 to 64 characters, ASCII letters, digits, '-' and '_', starting with a
// letter.
func ValidateCrateName(name string) error {
	const op = "registry.ValidateCrateName"
	if name == "" {
		return Errorf(op, EINVALID, "crate name is empty")
	}
	if len(name) > 64 {
		return Errorf(op, EINVALID, "crate name %s is longer than 64 characters", quoteShort(name))
	}
	for i, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_'))
		if !ok {
			if i == 0 {
				return Errorf(op, EINVALID, "crate name %s must start with an ASCII letter", quoteShort(name))
			}
			return Errorf(op, EINVALID, "crate name %s may contain only ASCII letters, digits, '-' and '_'", quoteShort(name))
		}
	}
	return nil
}

// semverRE is the SemVer 2.0.0 grammar (semver.org).
var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
	`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// ValidateVersion checks that v is a SemVer 2.0.0 version, as Cargo requires.
func ValidateVersion(v string) error {
	if len(v) > 128 || !semverRE.MatchString(v) {
		return Errorf("registry.ValidateVersion", EINVALID, "version %s is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build])", quoteShort(v))
	}
	return nil
}

// ReleaseSubject is the subject of release, yank, report and review records.
func ReleaseSubject(name, version string) string { return name + "@" + version }

// ParseReleaseSubject splits and validates "name@version".
func ParseReleaseSubject(s string) (name, version string, err error) {
	name, version, ok := strings.Cut(s, "@")
	if !ok {
		return "", "", Errorf("registry.ParseReleaseSubject", EINVALID, "%s is not name@version", quoteShort(s))
	}
	if err := ValidateCrateName(name); err != nil {
		return "", "", err
	}
	if err := ValidateVersion(version); err != nil {
		return "", "", err
	}
	return name, version, nil
}

// SubjectName returns the crate name a record is about, or "" for records
// that are not about a crate (key records, unknown kinds).
func (r *Record) SubjectName() string {
	switch r.Kind {
	case KindOwners:
		return r.Subject
	case KindRelease, KindYank, KindReport, KindReview:
		if name, _, ok := strings.Cut(r.Subject, "@"); ok {
			return name
		}
	}
	return ""
}

// CompareVersions orders two valid SemVer versions by SemVer precedence,
// ignoring build metadata; invalid versions sort before valid ones, then by
// string.
func CompareVersions(a, b string) int {
	pa, okA := parseSemver(a)
	pb, okB := parseSemver(b)
	switch {
	case !okA && !okB:
		return strings.Compare(a, b)
	case !okA:
		return -1
	case !okB:
		return 1
	}
	for i := 0; i < 3; i++ {
		if pa.core[i] != pb.core[i] {
			if pa.core[i] < pb.core[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(pa.pre) == 0 && len(pb.pre) == 0:
		return 0
	case len(pa.pre) == 0:
		return 1
	case len(pb.pre) == 0:
		return -1
	}
	for i := 0; i < len(pa.pre) && i < len(pb.pre); i++ {
		if c := comparePre(pa.pre[i], pb.pre[i]); c != 0 {
			return c
		}
	}
	return cmpInt(len(pa.pre), len(pb.pre))
}

type semver struct {
	core [3]uint64
	pre  []string
}

func parseSemver(v string) (semver, bool) {
	m := semverRE.FindStringSubmatch(v)
	if m == nil {
		return semver{}, false
	}
	var s semver
	for i := 0; i < 3; i++ {
		n, err := strconv.ParseUint(m[i+1], 10, 64)
		if err != nil {
			return semver{}, false
		}
		s.core[i] = n
	}
	if m[4] != "" {
		s.pre = strings.Split(m[4], ".")
	}
	return s, true
}

func comparePre(a, b string) int {
	na, errA := strconv.ParseUint(a, 10, 64)
	nb, errB := strconv.ParseUint(b, 10, 64)
	switch {
	case errA == nil && errB == nil:
		return cmpInt(int(min(na, 1<<62)), int(min(nb, 1<<62)))
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// IndexPath is the path of a crate's file inside a sparse index, as Cargo
// computes it: the name in lowercase under 1/, 2/, 3/{first char}/ or
// {first two}/{next two}/ ("" for an empty name).
func IndexPath(name string) string {
	lower := strings.ToLower(name)
	switch len(lower) {
	case 0:
		return ""
	case 1:
		return "1/" + lower
	case 2:
		return "2/" + lower
	case 3:
		return "3/" + lower[:1] + "/" + lower
	}
	return lower[:2] + "/" + lower[2:4] + "/" + lower
}
