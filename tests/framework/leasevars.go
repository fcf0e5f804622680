package framework

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// LeaseVars are the leases one run of a CLI script granted, by name.
// Lease IDs are the server's choice, different in every run, so a step
// that grants a lease names it (Capture), later steps write {{NAME}} for
// its ID (Expand), and outputs show <NAME> instead of it (Mask), in hex
// or decimal, so that runs against different servers compare.
type LeaseVars struct {
	names []string
	ids   []int64
}

// grantedRe finds the ID in a grant's output: the simple format's, always
// hex; the fields format's, hex or decimal as --hex says; json's, always
// decimal.
var grantedRe = regexp.MustCompile(`lease ([0-9a-f]{16}) granted|"ID" : ([0-9a-f]+)\n|"ID":(\d+),`)

// Capture notes the lease that out, the output of a grant run with args,
// names as name. It says false when out names none (the grant failed).
//
// The fields format's ID must be read in the base the grant printed it
// in: a decimal ID of sixteen digits reads as hex too.
func (l *LeaseVars) Capture(name, out string, args []string) bool {
	m := grantedRe.FindStringSubmatch(out)
	if m == nil {
		return false
	}
	var id int64
	var err error
	switch {
	case m[1] != "":
		id, err = strconv.ParseInt(m[1], 16, 64)
	case m[2] != "" && slices.Contains(args, "--hex"):
		id, err = strconv.ParseInt(m[2], 16, 64)
	case m[2] != "":
		id, err = strconv.ParseInt(m[2], 10, 64)
	default:
		id, err = strconv.ParseInt(m[3], 10, 64)
	}
	if err != nil {
		return false
	}
	l.names, l.ids = append(l.names, name), append(l.ids, id)
	return true
}

// Expand replaces {{NAME}} in args with the hex ID of each lease captured.
func (l *LeaseVars) Expand(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		for j, name := range l.names {
			a = strings.ReplaceAll(a, "{{"+name+"}}", fmt.Sprintf("%016x", l.ids[j]))
		}
		out[i] = a
	}
	return out
}

// Mask replaces each captured ID in s, hex or decimal, with <NAME>.
func (l *LeaseVars) Mask(s string) string {
	for j, name := range l.names {
		s = strings.ReplaceAll(s, fmt.Sprintf("%016x", l.ids[j]), "<"+name+">")
		s = strings.ReplaceAll(s, strconv.FormatInt(l.ids[j], 10), "<"+name+">")
	}
	return s
}
