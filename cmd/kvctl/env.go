package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// envPrefixes name the variables that set global flags, in the order
// they win: KVCTL_ENDPOINTS over ETCDCTL_ENDPOINTS.
var envPrefixes = []string{"KVCTL_", "ETCDCTL_"}

// envName is the variable for flag under prefix: --dial-timeout is
// ETCDCTL_DIAL_TIMEOUT.
func envName(prefix, flag string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag of fs not given on the command line from the
// environment, following etcdctl: an empty variable sets nothing, a
// value the flag cannot take is ignored (with a warning; etcdctl is
// silent and may leave the flag zeroed), a variable for
// a flag also given on the command line is a fatal conflict, and a
// prefixed variable naming no flag draws a warning. Warnings and the
// fatal message are JSON log lines on stderr, like etcdctl's.
func applyEnv(fs *pflag.FlagSet, environ []string, stderr io.Writer) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	onCommandLine := map[string]bool{}
	known := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) {
		for _, p := range envPrefixes {
			known[envName(p, f.Name)] = true
			onCommandLine[envName(p, f.Name)] = f.Changed
		}
		if f.Changed {
			return
		}
		for _, p := range envPrefixes {
			name := envName(p, f.Name)
			if v := env[name]; v != "" {
				old := f.Value.String()
				if err := fs.Set(f.Name, v); err != nil {
					// pflag may have zeroed the value on the way (a bad
					// duration becomes 0s); keep the default instead.
					if !strings.HasSuffix(f.Value.Type(), "Slice") {
						_ = f.Value.Set(old)
					}
					logLine(stderr, "warn", "ignored an environment variable with an invalid value", name+"="+v)
				}
				return
			}
		}
	})
	for _, p := range envPrefixes {
		// Read by the watch command itself, not a flag.
		known[p+"WATCH_KEY"], known[p+"WATCH_RANGE_END"] = true, true
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "KVCTL_") && !strings.HasPrefix(name, "ETCDCTL_") {
			continue
		}
		if onCommandLine[name] {
			logLine(stderr, "fatal", "an environment variable conflicts with the command-line flag it would set; drop one of them", name)
			return exitSilently(exitError)
		}
		if !known[name] {
			logLine(stderr, "warn", "unrecognized environment variable", kv)
		}
	}
	return nil
}

// logLine writes one JSON log line in the shape etcd's tools use, so
// whatever filters their diagnostics filters ours.
func logLine(w io.Writer, level, msg, variable string) {
	b, _ := json.Marshal(struct {
		Level    string `json:"level"`
		TS       string `json:"ts"`
		Caller   string `json:"caller"`
		Msg      string `json:"msg"`
		Variable string `json:"environment-variable"`
	}{level, time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"), "kvctl/env.go", msg, variable})
	fmt.Fprintf(w, "%s\n", b)
}

// findEndpoints is the servers from DNS discovery when --discovery-srv
// names a domain, otherwise --endpoints.
func (g *globals) findEndpoints() ([]string, error) {
	if g.discoverySrv != "" {
		eps, err := discoverEndpoints(g.discoverySrv, g.discoveryName)
		if err != nil {
			return nil, err
		}
		var kept []string
		for _, ep := range eps {
			if !g.insecureDiscovery && strings.HasPrefix(ep, "http://") {
				fmt.Fprintf(g.stderr, "ignoring discovered insecure endpoint %q\n", ep)
				continue
			}
			kept = append(kept, ep)
		}
		if len(kept) > 0 {
			return kept, nil
		}
	}
	eps := make([]string, 0, len(g.endpoints))
	for _, ep := range g.endpoints {
		eps = append(eps, strings.TrimSpace(ep))
	}
	return eps, nil
}

// discoverEndpoints reads the _etcd-client-ssl and _etcd-client SRV
// records of domain (with "-name" appended when a service name is given),
// as https and http URLs.
func discoverEndpoints(domain, name string) ([]string, error) {
	var eps []string
	var errs []error
	for _, svc := range []struct{ service, scheme string }{{"etcd-client-ssl", "https"}, {"etcd-client", "http"}} {
		service := svc.service
		if name != "" {
			service += "-" + name
		}
		_, srvs, err := net.LookupSRV(service, "tcp", domain)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, s := range srvs {
			eps = append(eps, svc.scheme+"://"+net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))))
		}
	}
	if len(errs) == 2 {
		return nil, fmt.Errorf("dns lookup errors: %w and %w", errs[0], errs[1])
	}
	return eps, nil
}

// askPassword asks for the password of --user.
func askPassword(stdin io.Reader, stdout io.Writer) (string, error) {
	return readSecret(stdin, stdout, "Password: ")
}

// readSecret prompts on stdout and reads one line from stdin, with echo
// off when stdin is a terminal, then ends the prompt's line whatever was
// read, as etcdctl does. Spaces around the answer are dropped.
func readSecret(stdin io.Reader, stdout io.Writer, prompt string) (string, error) {
	fmt.Fprint(stdout, prompt)
	if f, ok := stdin.(*os.File); ok {
		if restore, err := echoOff(int(f.Fd())); err == nil {
			defer restore()
		}
	}
	line, err := readLine(stdin)
	fmt.Fprintln(stdout)
	if err != nil {
		return "", fmt.Errorf("failed during password entry: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// readLine reads up to a newline or the end of stdin one byte at a time:
// a buffered read would swallow what follows, which belongs to the next
// prompt (user add asks twice) or to the command itself.
func readLine(r io.Reader) (string, error) {
	var line []byte
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n == 1 && b[0] != '\n' {
			line = append(line, b[0])
			continue
		}
		if n == 1 || err == io.EOF {
			return strings.TrimSuffix(string(line), "\r"), nil
		}
		if err != nil {
			return "", err
		}
	}
}

// echoOff stops the terminal on fd from echoing typed characters and
// returns what puts it back; it fails when fd is not a terminal.
func echoOff(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
