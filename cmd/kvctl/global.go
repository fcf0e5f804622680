package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/grpclog"

	"github.com/kvd-io/kvd/pkg/client"
)

// globals are the flags every command takes, and the process's streams.
type globals struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// rawArgs is the whole command line, for commands (watch) that must
	// see where "--" was.
	rawArgs []string

	endpoints                    []string
	debug, hex                   bool
	writeOut                     string
	dialTimeout, commandTimeout  time.Duration
	keepAliveTime, keepAliveTO   time.Duration
	maxRequestBytes, maxRecvSize int
	insecureTransport            bool
	insecureDiscovery            bool
	insecureSkipVerify           bool
	cert, key, cacert            string
	jwtToken, user, password     string
	discoverySrv, discoveryName  string

	// Set by prepare.
	prepared bool
	eps      []string
	username string
	passwd   string
}

func (g *globals) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&g.endpoints, "endpoints", []string{"127.0.0.1:2379"}, "servers to talk to, as a comma-separated list of host:port or URLs")
	fs.BoolVar(&g.debug, "debug", false, "print the effective settings and the client's connection log on stderr")
	fs.StringVarP(&g.writeOut, "write-out", "w", "simple", "output format: simple, json, fields, table or protobuf")
	fs.BoolVar(&g.hex, "hex", false, "print keys, values and IDs in hexadecimal")
	fs.DurationVar(&g.dialTimeout, "dial-timeout", 2*time.Second, "how long to try each connection to a server")
	fs.DurationVar(&g.commandTimeout, "command-timeout", 5*time.Second, "how long a short command may take, connecting included")
	fs.DurationVar(&g.keepAliveTime, "keepalive-time", 2*time.Second, "how often to ping an idle connection")
	fs.DurationVar(&g.keepAliveTO, "keepalive-timeout", 6*time.Second, "how long to wait for a ping's answer before dropping the connection")
	fs.IntVar(&g.maxRequestBytes, "max-request-bytes", 0, "largest request the client sends, in bytes (0: 2 MiB)")
	fs.IntVar(&g.maxRecvSize, "max-recv-bytes", 0, "largest response the client accepts, in bytes (0: no limit of our own)")
	fs.BoolVar(&g.insecureTransport, "insecure-transport", true, "talk plain text unless certificates or https:// endpoints ask for TLS")
	fs.BoolVar(&g.insecureDiscovery, "insecure-discovery", true, "accept plain-text endpoints found through DNS discovery")
	fs.BoolVar(&g.insecureSkipVerify, "insecure-skip-tls-verify", false, "do not verify the server's certificate (testing only)")
	fs.StringVar(&g.cert, "cert", "", "client certificate file for TLS")
	fs.StringVar(&g.key, "key", "", "client private key file for TLS")
	fs.StringVar(&g.cacert, "cacert", "", "CA bundle to verify servers' certificates")
	fs.StringVar(&g.jwtToken, "auth-jwt-token", "", "authenticate with this JWT instead of a user and password")
	fs.StringVar(&g.user, "user", "", "user name, or name:password, to authenticate as (asks for the password when missing)")
	fs.StringVar(&g.password, "password", "", "password for --user (then --user must not contain one)")
	fs.StringVarP(&g.discoverySrv, "discovery-srv", "d", "", "find the endpoints in this domain's DNS SRV records")
	fs.StringVar(&g.discoveryName, "discovery-srv-name", "", "service name suffix for the DNS SRV lookup")
}

// hideGlobalFlags keeps per-command help short; `kvctl options` lists them.
func hideGlobalFlags(root *cobra.Command) {
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) { f.Hidden = true })
	cobraHelp := root.HelpFunc()
	root.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		cobraHelp(cmd, args)
		fmt.Fprintln(cmd.OutOrStdout(), `Use "kvctl options" for the global flags every command takes.`)
	})
}

func newOptionsCommand(g *globals, root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:     "options",
		Short:   "Lists the global flags every command takes",
		GroupID: groupUtility,
		Run: func(*cobra.Command, []string) {
			fs := pflag.NewFlagSet("global", pflag.ContinueOnError)
			root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
				shown := *f
				shown.Hidden = false
				fs.AddFlag(&shown)
			})
			fmt.Fprintf(g.stdout, "These flags work with every command:\n\n%s", fs.FlagUsages())
		},
	}
}

// prepare does what every command that talks to a server does before it
// connects, in etcdctl's order: read the environment, print the debug
// settings, find the endpoints, check the TLS and auth flags, and pick
// the output printer.
func (g *globals) prepare(cmd *cobra.Command) (printer, error) {
	if !g.prepared {
		g.prepared = true
		if err := applyEnv(cmd.InheritedFlags(), os.Environ(), g.stderr); err != nil {
			return nil, err
		}
		g.setupLogging(cmd)
		eps, err := g.findEndpoints()
		if err != nil {
			return nil, failWith(exitError, err)
		}
		g.eps = eps
		if err := g.checkTLSFlags(cmd); err != nil {
			return nil, err
		}
		if err := g.resolveAuth(); err != nil {
			return nil, err
		}
	}
	return newPrinter(g.writeOut, g.hex, g.stdout, g.stderr)
}

// setupLogging routes gRPC's log: errors only, or everything with --debug,
// after listing every setting as the environment variable that sets it.
func (g *globals) setupLogging(cmd *cobra.Command) {
	if !g.debug {
		grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, g.stderr))
		return
	}
	grpclog.SetLoggerV2(grpclog.NewLoggerV2WithVerbosity(g.stderr, g.stderr, g.stderr, 4))
	cmd.InheritedFlags().VisitAll(func(f *pflag.Flag) {
		fmt.Fprintf(g.stderr, "%s=%v\n", envName("ETCDCTL_", f.Name), f.Value)
	})
}

func (g *globals) logger() *slog.Logger {
	if !g.debug {
		return nil
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// checkTLSFlags refuses a TLS flag given with an empty value.
func (g *globals) checkTLSFlags(cmd *cobra.Command) error {
	for _, name := range []string{"cert", "key", "cacert"} {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed && f.Value.String() == "" {
			return fail(exitBadArgs, "empty string is passed to --%s option", name)
		}
	}
	return nil
}

// resolveAuth settles the user and password: --user name:password,
// --user name --password pw, or --user name and a prompt.
func (g *globals) resolveAuth() error {
	if g.user == "" || g.jwtToken != "" {
		return nil
	}
	if g.password != "" {
		g.username, g.passwd = g.user, g.password
		return nil
	}
	if name, pw, ok := strings.Cut(g.user, ":"); ok {
		g.username, g.passwd = name, pw
		return nil
	}
	pw, err := askPassword(g.stdin, g.stdout)
	if err != nil {
		return failWith(exitError, err)
	}
	g.username, g.passwd = g.user, pw
	return nil
}

// tlsConfig is nil for plain text, as etcdctl decides: TLS when a
// certificate, key or CA is given or --insecure-transport=false.
func (g *globals) tlsConfig() (*tls.Config, error) {
	var cfg *tls.Config
	if g.cert != "" || g.key != "" || g.cacert != "" {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if (g.cert == "") != (g.key == "") {
			return nil, fmt.Errorf("KeyFile and CertFile must both be present[key: %v, cert: %v]", g.key, g.cert)
		}
		if g.cert != "" {
			pair, err := tls.LoadX509KeyPair(g.cert, g.key)
			if err != nil {
				return nil, err
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		if g.cacert != "" {
			pem, err := os.ReadFile(g.cacert)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("no certificates found in %s", g.cacert)
			}
			cfg.RootCAs = pool
		}
	}
	if cfg == nil && !g.insecureTransport {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if g.insecureSkipVerify {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		cfg.InsecureSkipVerify = true
	}
	return cfg, nil
}

// clientConfig is the client configuration for eps from the flags.
func (g *globals) clientConfig(eps []string) (client.Config, error) {
	tlsCfg, err := g.tlsConfig()
	if err != nil {
		return client.Config{}, failWith(exitBadArgs, err)
	}
	return client.Config{
		Endpoints:            eps,
		DialTimeout:          g.dialTimeout,
		DialKeepAliveTime:    g.keepAliveTime,
		DialKeepAliveTimeout: g.keepAliveTO,
		MaxCallSendMsgSize:   g.maxRequestBytes,
		MaxCallRecvMsgSize:   g.maxRecvSize,
		Username:             g.username,
		Password:             g.passwd,
		Token:                g.jwtToken,
		TLS:                  tlsCfg,
		Logger:               g.logger(),
	}, nil
}

// connect opens a client for eps; nil eps means the global endpoints.
func (g *globals) connect(eps []string) (*client.Client, error) {
	if eps == nil {
		eps = g.eps
	}
	cfg, err := g.clientConfig(eps)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg)
	if err != nil {
		return nil, failWith(exitBadConnection, err)
	}
	return c, nil
}

// commandCtx bounds one short command's calls.
func (g *globals) commandCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.commandTimeout)
}
