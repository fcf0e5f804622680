// Command kvctl is kvd's command-line client. It takes etcdctl v3.7's
// commands, flags, environment variables (ETCDCTL_* and KVCTL_*), output
// formats and exit codes, so scripts written for one work with the other,
// against kvd or etcd alike.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kvd-io/kvd/pkg/client"
)

// Exit codes, as etcdctl's.
const (
	exitError        = 1
	exitBadFeature   = 4
	exitInvalidInput = 3
	exitBadArgs      = 128
)

// exitErr carries an exit code out of a command.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }

func fail(code int, format string, args ...any) error {
	return &exitErr{code: code, err: fmt.Errorf(format, args...)}
}

func failWith(code int, err error) error { return &exitErr{code: code, err: err} }

type globals struct {
	endpoints      []string
	writeOut       string
	hex, debug     bool
	dialTimeout    time.Duration
	commandTimeout time.Duration
	keepAliveTime  time.Duration
	keepAliveTO    time.Duration
	maxSend        int
	maxRecv        int
	user, password string
}

func main() {
	g := &globals{}
	root := newRoot(g)
	err := root.Execute()
	if err == nil {
		return
	}
	var ee *exitErr
	if errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "Error:", ee.err)
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "Error:", err)
	os.Exit(exitError)
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "kvctl",
		Short:         "A command-line client for kvd and other etcd v3 API servers.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd.Root().PersistentFlags())
		},
	}
	fs := root.PersistentFlags()
	fs.StringSliceVar(&g.endpoints, "endpoints", []string{"127.0.0.1:2379"}, "gRPC endpoints")
	fs.BoolVar(&g.debug, "debug", false, "enable client-side debug logging")
	fs.StringVarP(&g.writeOut, "write-out", "w", "simple", "set the output format (fields, json, protobuf, simple, table)")
	fs.BoolVar(&g.hex, "hex", false, "print byte strings as hex encoded strings")
	fs.DurationVar(&g.dialTimeout, "dial-timeout", 2*time.Second, "dial timeout for client connections")
	fs.DurationVar(&g.commandTimeout, "command-timeout", 5*time.Second, "timeout for short running command (excluding dial timeout)")
	fs.DurationVar(&g.keepAliveTime, "keepalive-time", 2*time.Second, "keepalive time for client connections")
	fs.DurationVar(&g.keepAliveTO, "keepalive-timeout", 6*time.Second, "keepalive timeout for client connections")
	fs.IntVar(&g.maxSend, "max-request-bytes", 0, "client-side request send limit in bytes (0 means 2 MiB)")
	fs.IntVar(&g.maxRecv, "max-recv-bytes", 0, "client-side response receive limit in bytes (0 means no limit beyond gRPC's)")
	fs.Bool("insecure-transport", true, "disable transport security for client connections")
	fs.Bool("insecure-discovery", true, "accept insecure SRV records describing cluster endpoints")
	fs.Bool("insecure-skip-tls-verify", false, "skip server certificate verification (for testing only)")
	fs.String("cert", "", "identify secure client using this TLS certificate file")
	fs.String("key", "", "identify secure client using this TLS key file")
	fs.String("cacert", "", "verify certificates of TLS-enabled secure servers using this CA bundle")
	fs.String("auth-jwt-token", "", "JWT token used for authentication")
	fs.StringVar(&g.user, "user", "", "username[:password] for authentication")
	fs.StringVar(&g.password, "password", "", "password for authentication")
	fs.StringP("discovery-srv", "d", "", "domain name to query for SRV records describing cluster endpoints")
	fs.String("discovery-srv-name", "", "service name to query when using DNS discovery")

	root.AddCommand(
		newPutCommand(g), newGetCommand(g), newDelCommand(g), newTxnCommand(g),
		newCompactionCommand(g), newMemberCommand(g), newEndpointCommand(g), newVersionCommand(),
	)
	return root
}

// applyEnv fills every flag not given on the command line from
// ETCDCTL_<FLAG> or KVCTL_<FLAG> (KVCTL_ wins when both are set), as
// etcdctl does for its own prefix.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		name := strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		for _, prefix := range []string{"KVCTL_", "ETCDCTL_"} {
			v, ok := os.LookupEnv(prefix + name)
			if !ok || v == "" {
				continue
			}
			if f.Changed {
				fmt.Fprintf(os.Stderr, "Warning: %s%s=%q is shadowed by the --%s flag\n", prefix, name, v, f.Name)
				return
			}
			if serr := fs.Set(f.Name, v); serr != nil && err == nil {
				err = failWith(exitError, fmt.Errorf("invalid value %q for %s%s: %w", v, prefix, name, serr))
			}
			return
		}
	})
	return err
}

// connect builds the client, failing the way etcdctl does for options kvd
// cannot honour yet.
func (g *globals) connect() (*client.Client, error) {
	if g.user != "" || g.password != "" {
		return nil, fail(exitError, "authentication (--user/--password) is not supported by this kvctl yet")
	}
	eps := make([]string, 0, len(g.endpoints))
	for _, ep := range g.endpoints {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	c, err := client.New(client.Config{
		Endpoints:            eps,
		DialKeepAliveTime:    g.keepAliveTime,
		DialKeepAliveTimeout: g.keepAliveTO,
		MaxCallSendMsgSize:   g.maxSend,
		MaxCallRecvMsgSize:   g.maxRecv,
	})
	if err != nil {
		return nil, failWith(exitError, err)
	}
	return c, nil
}

func (g *globals) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.commandTimeout)
}

// printer picks the output format, failing as etcdctl does for an unknown one.
func (g *globals) printer() (printer, error) {
	switch g.writeOut {
	case "simple", "json", "fields", "protobuf", "table":
		return printer{format: g.writeOut, hex: g.hex}, nil
	}
	return printer{}, fail(exitBadFeature, "unsupported output format")
}
