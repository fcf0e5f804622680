package main

import (
	"fmt"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/client"
)

// authResponse is any answer of the Auth service: each command has its
// own type, which is how the printers below tell them apart.
type authResponse interface {
	proto.Message
	GetHeader() *pb.ResponseHeader
}

// authResult is one user, role or auth command's answer, with the names
// the command was given: the responses do not carry them, and the simple
// format repeats them ("Role r created").
type authResult struct {
	user, role string
	// key and end are the range a revoke-permission named, end as sent.
	key, end string
	resp     authResponse
}

// JSON and protobuf print every auth answer as it came, and the table
// format none, as etcdctl does; the change, if any, is made first.

func (p *jsonPrinter) Auth(r authResult) error     { return p.print(r.resp) }
func (p *protobufPrinter) Auth(r authResult) error { return p.write(r.resp) }
func (p *tablePrinter) Auth(authResult) error      { return unsupported("table") }

// Auth in the fields format is the header alone, plus the permissions of
// a role and the names in a role list. etcdctl has no fields layout for
// a user, a user list or the auth status, and refuses them.
func (p *fieldsPrinter) Auth(r authResult) error {
	switch resp := r.resp.(type) {
	case *pb.AuthUserGetResponse, *pb.AuthUserListResponse, *pb.AuthStatusResponse:
		return unsupported("fields")
	case *pb.AuthRoleGetResponse:
		p.header(resp.Header)
		for _, perm := range resp.Perm {
			// Two spaces after the colon: etcdctl's own quirk, kept so
			// that scripts splitting on it see the same bytes.
			fmt.Fprintf(p.out, "%q :  %s\n", "PermType", perm.PermType)
			p.quoted("Key", string(perm.Key))
			p.quoted("RangeEnd", string(perm.RangeEnd))
		}
	case *pb.AuthRoleListResponse:
		p.header(resp.Header)
		fmt.Fprint(p.out, `"Roles" :`)
		for _, role := range resp.Roles {
			fmt.Fprintf(p.out, " %q", role)
		}
		fmt.Fprintln(p.out)
	default:
		p.header(r.resp.GetHeader())
	}
	return nil
}

// Auth in the simple format is a sentence about what was done, or the
// names and permissions asked for.
func (p *simplePrinter) Auth(r authResult) error {
	switch resp := r.resp.(type) {
	case *pb.AuthRoleAddResponse:
		fmt.Fprintf(p.out, "Role %s created\n", r.role)
	case *pb.AuthRoleDeleteResponse:
		fmt.Fprintf(p.out, "Role %s deleted\n", r.role)
	case *pb.AuthRoleGetResponse:
		p.role(r.role, resp.Perm)
	case *pb.AuthRoleListResponse:
		p.lines(resp.Roles)
	case *pb.AuthRoleGrantPermissionResponse:
		fmt.Fprintf(p.out, "Role %s updated\n", r.role)
	case *pb.AuthRoleRevokePermissionResponse:
		p.revoked(r)
	case *pb.AuthUserAddResponse:
		fmt.Fprintf(p.out, "User %s created\n", r.user)
	case *pb.AuthUserDeleteResponse:
		fmt.Fprintf(p.out, "User %s deleted\n", r.user)
	case *pb.AuthUserGetResponse:
		fmt.Fprintf(p.out, "User: %s\nRoles:", r.user)
		for _, role := range resp.Roles {
			fmt.Fprintf(p.out, " %s", role)
		}
		fmt.Fprintln(p.out)
	case *pb.AuthUserListResponse:
		p.lines(resp.Users)
	case *pb.AuthUserChangePasswordResponse:
		fmt.Fprintln(p.out, "Password updated")
	case *pb.AuthUserGrantRoleResponse:
		fmt.Fprintf(p.out, "Role %s is granted to user %s\n", r.role, r.user)
	case *pb.AuthUserRevokeRoleResponse:
		fmt.Fprintf(p.out, "Role %s is revoked from user %s\n", r.role, r.user)
	case *pb.AuthStatusResponse:
		fmt.Fprintf(p.out, "Authentication Status: %t\nAuthRevision: %d\n", resp.Enabled, resp.AuthRevision)
	}
	return nil
}

func (p *simplePrinter) lines(names []string) {
	for _, n := range names {
		fmt.Fprintln(p.out, n)
	}
}

// role lists the keys a role may read, then those it may write. The root
// role may do anything whatever it was granted, and says so when it was
// granted nothing.
func (p *simplePrinter) role(name string, perms []*client.Permission) {
	fmt.Fprintf(p.out, "Role %s\n", name)
	if name == "root" && len(perms) == 0 {
		fmt.Fprint(p.out, "KV Read:\n\t[, <open ended>\nKV Write:\n\t[, <open ended>\n")
		return
	}
	for _, part := range []struct {
		title string
		kind  client.PermissionType
	}{{"KV Read:", client.PermRead}, {"KV Write:", client.PermWrite}} {
		fmt.Fprintln(p.out, part.title)
		for _, perm := range perms {
			if perm.PermType == part.kind || perm.PermType == client.PermReadWrite {
				fmt.Fprintf(p.out, "\t%s\n", permRangeText(perm))
			}
		}
	}
}

// permRangeText shows a permission's key, or its range as a half-open
// interval ("\x00" as the end means no end), naming the prefix when the
// range is exactly one.
func permRangeText(perm *client.Permission) string {
	key, end := string(perm.Key), string(perm.RangeEnd)
	if end == "" {
		return key
	}
	var sb strings.Builder
	if end == "\x00" {
		fmt.Fprintf(&sb, "[%s, <open ended>", key)
	} else {
		fmt.Fprintf(&sb, "[%s, %s)", key, end)
	}
	if key != "" && client.GetPrefixRangeEnd(key) == end {
		fmt.Fprintf(&sb, " (prefix %s)", key)
	}
	return sb.String()
}

func (p *simplePrinter) revoked(r authResult) {
	switch r.end {
	case "":
		fmt.Fprintf(p.out, "Permission of key %s is revoked from role %s\n", r.key, r.role)
	case "\x00":
		fmt.Fprintf(p.out, "Permission of range [%s, <open ended> is revoked from role %s\n", r.key, r.role)
	default:
		fmt.Fprintf(p.out, "Permission of range [%s, %s) is revoked from role %s\n", r.key, r.end, r.role)
	}
}
