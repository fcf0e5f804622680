// Package compactor discards old key history on a schedule, as etcd's
// --auto-compaction-mode and --auto-compaction-retention do: "periodic"
// keeps about a time window of history, "revision" keeps the last N
// revisions. Only the leader compacts; each compaction goes through raft
// like a client's, so every member compacts at the same point of the log.
package compactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// The two modes of --auto-compaction-mode.
const (
	ModePeriodic = "periodic"
	ModeRevision = "revision"
)

// DefaultRevisionInterval is how often revision mode looks at the current
// revision, as etcd's.
const DefaultRevisionInterval = 5 * time.Minute

// ParseRetention reads --auto-compaction-retention the way etcd does: a
// non-negative whole number is a count of revisions in revision mode and
// of hours in periodic mode; anything else must be a Go duration. In
// revision mode the count comes back as a Duration of that many
// nanoseconds, which is how etcd carries it too. Zero turns compaction off.
func ParseRetention(mode, retention string) (time.Duration, error) {
	if retention == "" {
		retention = "0"
	}
	if n, err := strconv.Atoi(retention); err == nil && n >= 0 {
		switch mode {
		case ModeRevision:
			return time.Duration(n), nil
		case ModePeriodic:
			return time.Duration(n) * time.Hour, nil
		case "":
			return 0, errors.New("--auto-compaction-mode is undefined")
		}
		return 0, nil
	}
	d, err := time.ParseDuration(retention)
	if err != nil {
		return 0, fmt.Errorf("error parsing CompactionRetention: %w", err)
	}
	return d, nil
}

// CheckMode refuses a mode etcd does not know, with etcd's words.
func CheckMode(mode string) error {
	switch mode {
	case ModePeriodic, ModeRevision:
		return nil
	case "":
		return errors.New("undefined auto-compaction-mode")
	}
	return fmt.Errorf("unknown auto-compaction-mode %q", mode)
}

// Config is what a compactor needs from the member that runs it.
type Config struct {
	Mode      string
	Retention time.Duration // from ParseRetention; must not be zero
	// RevisionInterval replaces revision mode's five-minute check when
	// positive (tests only).
	RevisionInterval time.Duration

	Rev      func() int64 // the member's current revision
	IsLeader func() bool
	// Compact proposes a compaction at rev and waits for its outcome;
	// it reports nil also when rev was already compacted.
	Compact func(ctx context.Context, rev int64) error
	Logger  *slog.Logger
}

// Run compacts on cfg's schedule until stop is closed. The caller owns the
// goroutine that runs it.
func Run(cfg Config, stop <-chan struct{}) error {
	if err := CheckMode(cfg.Mode); err != nil {
		return err
	}
	if cfg.Retention <= 0 {
		return fmt.Errorf("auto-compaction retention %v must be positive", cfg.Retention)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if cfg.Mode == ModePeriodic {
		runPeriodic(ctx, cfg)
	} else {
		runRevision(ctx, cfg)
	}
	return nil
}

func runPeriodic(ctx context.Context, cfg Config) {
	p := newPeriodic(cfg.Retention, time.Now(), cfg.Rev())
	everyTick(ctx, p.interval, func(now time.Time) {
		// Sampled after any compaction, at the revision it left.
		defer func() { p.sample(cfg.Rev()) }()
		if !cfg.IsLeader() {
			return
		}
		rev, ok := p.due(now)
		if !ok {
			return
		}
		cfg.Logger.Info("starting auto periodic compaction", "revision", rev, "compact-period", p.period)
		if err := cfg.Compact(ctx, rev); err != nil {
			cfg.Logger.Warn("failed auto periodic compaction", "revision", rev, "retry-interval", p.interval, "err", err)
			return
		}
		p.done(rev, time.Now())
		cfg.Logger.Info("completed auto periodic compaction", "revision", rev, "took", time.Since(now))
	})
}

func runRevision(ctx context.Context, cfg Config) {
	r := &revisionRule{retention: int64(cfg.Retention)}
	every := DefaultRevisionInterval
	if cfg.RevisionInterval > 0 {
		every = cfg.RevisionInterval
	}
	everyTick(ctx, every, func(now time.Time) {
		if !cfg.IsLeader() {
			return
		}
		rev, ok := r.due(cfg.Rev())
		if !ok {
			return
		}
		cfg.Logger.Info("starting auto revision compaction", "revision", rev, "revision-compaction-retention", r.retention)
		if err := cfg.Compact(ctx, rev); err != nil {
			cfg.Logger.Warn("failed auto revision compaction", "revision", rev, "retry-interval", every, "err", err)
			return
		}
		r.done(rev)
		cfg.Logger.Info("completed auto revision compaction", "revision", rev, "took", time.Since(now))
	})
}

// everyTick calls f at each tick of a ticker of interval until ctx ends.
func everyTick(ctx context.Context, interval time.Duration, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}
