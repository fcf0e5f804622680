package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// tokenCreds sends an auth token with every call, as etcd's clients do.
type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{rpctypes.TokenFieldNameGRPC: string(t)}, nil
}

func (tokenCreds) RequireTransportSecurity() bool { return false }

// login authenticates as --user once, on the first endpoint: the token
// is good on every member.
func (o *options) login() error {
	if o.user == "" {
		return nil
	}
	name, password, ok := strings.Cut(o.user, ":")
	if !ok {
		return fmt.Errorf("--user %q: want name:password", o.user)
	}
	cc, err := dial(o.endpoints[0], "")
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := pb.NewAuthClient(cc).Authenticate(ctx, &pb.AuthenticateRequest{Name: name, Password: password})
	if err != nil {
		return fmt.Errorf("authenticate as %s: %w", name, err)
	}
	o.token = resp.Token
	return nil
}

// authSetupCommand prepares a server for the auth scenarios: root, and a
// user that may read and write every key, then enables auth.
func authSetupCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "auth-setup name:password",
		Short: "Enable auth with root (password the same) and a user who may read and write every key",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			name, password, ok := strings.Cut(args[0], ":")
			if !ok {
				return fmt.Errorf("want name:password, not %q", args[0])
			}
			cc, err := o.dial(o.endpoints[0])
			if err != nil {
				return err
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			a := pb.NewAuthClient(cc)
			every := &authpb.Permission{PermType: authpb.READWRITE, Key: []byte{0}, RangeEnd: []byte{0}}
			steps := []func() error{
				func() error { _, err := a.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: "root"}); return err },
				func() error {
					_, err := a.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "root", Password: password})
					return err
				},
				func() error {
					_, err := a.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"})
					return err
				},
				func() error { _, err := a.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: name}); return err },
				func() error {
					_, err := a.RoleGrantPermission(ctx, &pb.AuthRoleGrantPermissionRequest{Name: name, Perm: every})
					return err
				},
				func() error {
					_, err := a.UserAdd(ctx, &pb.AuthUserAddRequest{Name: name, Password: password})
					return err
				},
				func() error {
					_, err := a.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: name, Role: name})
					return err
				},
				func() error { _, err := a.AuthEnable(ctx, &pb.AuthEnableRequest{}); return err },
			}
			for i, st := range steps {
				if err := st(); err != nil {
					return fmt.Errorf("auth set-up step %d: %w", i+1, err)
				}
			}
			return nil
		},
	}
}

// cliCommand times a command-line client run one call after another,
// each a process that connects and, with --user, authenticates anew: what
// a shell script of kvctl or etcdctl calls costs.
func cliCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "cli path [args...]",
		Short: "Time --total sequential runs of a CLI (kvctl or etcdctl) given --endpoints and --user",
		Args:  cobra.MinimumNArgs(1),
		// The CLI logs in itself, once per run: that is what is timed.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(_ *cobra.Command, args []string) error {
			cliArgs := []string{"--endpoints=" + strings.Join(o.endpoints, ",")}
			if o.user != "" {
				cliArgs = append(cliArgs, "--user="+o.user)
			}
			cliArgs = append(cliArgs, args[1:]...)
			lat := make([]time.Duration, 0, o.total)
			var failures int64
			var firstErr any
			start := time.Now()
			for range o.total {
				t := time.Now()
				out, err := exec.Command(args[0], cliArgs...).CombinedOutput()
				if err != nil {
					failures++
					if firstErr == nil {
						firstErr = fmt.Sprintf("%v: %s", err, out)
					}
					continue
				}
				lat = append(lat, time.Since(t))
			}
			report(lat, time.Since(start), failures, firstErr)
			return nil
		},
	}
}
