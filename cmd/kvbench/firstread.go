package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// firstReadCommand measures how soon restarted servers serve: it asks
// every endpoint for a linearizable read, again and again, until one
// answers, and reports the time from --since (when the script started the
// processes) to that answer. It is started right after the processes, so
// connections are retried quickly: a grpc client's default reconnect
// backoff (a second) would be measured instead of the server.
func firstReadCommand(o *options) *cobra.Command {
	var sinceNS int64
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "first-read",
		Short: "Time from --since to the first linearizable read any endpoint serves",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			since := time.Now()
			if sinceNS > 0 {
				since = time.Unix(0, sinceNS)
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			ep, err := o.firstRead(ctx)
			if err != nil {
				return err
			}
			d := time.Since(since)
			fmt.Printf("First linearizable read served by %s after %.1f ms\n", ep, ms(d))
			fmt.Printf("RESULT ms=%.1f endpoint=%s\n", ms(d), ep)
			return nil
		},
	}
	cmd.Flags().Int64Var(&sinceNS, "since", 0, "start of the measured time, in Unix nanoseconds (0: now)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	return cmd
}

// retryGap is the pause between one endpoint's failed attempts.
const retryGap = 5 * time.Millisecond

// firstRead polls every endpoint at once and returns the first that
// served a linearizable read.
func (o *options) firstRead(ctx context.Context) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		ep  string
		err error
	}
	answers := make(chan answer, len(o.endpoints))
	for _, ep := range o.endpoints {
		go func() { answers <- answer{ep, pollRead(ctx, ep, o.token)} }()
	}
	var errs []error
	for range o.endpoints {
		a := <-answers
		if a.err == nil {
			return a.ep, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", a.ep, a.err))
	}
	return "", fmt.Errorf("no linearizable read served: %w", errors.Join(errs...))
}

// pollRead reads from ep until a read succeeds or ctx ends, and returns
// the last error in that case.
func pollRead(ctx context.Context, ep, token string) error {
	creds := insecure.NewCredentials()
	if tlsCreds != nil {
		creds = tlsCreds
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: retryGap, Multiplier: 1, MaxDelay: retryGap},
			MinConnectTimeout: time.Second,
		}),
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(token)))
	}
	cc, err := grpc.NewClient(strings.TrimPrefix(strings.TrimPrefix(ep, "http://"), "https://"), opts...)
	if err != nil {
		return fmt.Errorf("dial %s: %w", ep, err)
	}
	defer cc.Close()
	kv := pb.NewKVClient(cc)
	last := ctx.Err()
	for ctx.Err() == nil {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := kv.Range(actx, &pb.RangeRequest{Key: []byte("first-read")})
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-time.After(retryGap):
		case <-ctx.Done():
		}
	}
	return last
}
