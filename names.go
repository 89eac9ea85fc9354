package registry

import (
	"regexp"
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
