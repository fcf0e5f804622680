package main

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestObservabilityFlags(t *testing.T) {
	d := parse(t)
	if d.Metrics != "basic" || d.WarningApplyDuration != 100*time.Millisecond || len(d.ListenMetricsURLs) != 0 {
		t.Fatalf("defaults: metrics %q, warning-apply-duration %v, listen-metrics-urls %v", d.Metrics, d.WarningApplyDuration, d.ListenMetricsURLs)
	}
	if _, ok := d.Logger.Handler().(*slog.JSONHandler); !ok {
		t.Fatalf("default log format is %T, want JSON", d.Logger.Handler())
	}
	cfg := parse(t, "--metrics", "extensive", "--warning-apply-duration", "250ms", "--log-format", "console",
		"--listen-metrics-urls", "http://127.0.0.1:2381,http://127.0.0.1:2382")
	if cfg.Metrics != "extensive" || cfg.WarningApplyDuration != 250*time.Millisecond ||
		!slices.Equal(cfg.ListenMetricsURLs, []string{"http://127.0.0.1:2381", "http://127.0.0.1:2382"}) {
		t.Fatalf("parsed: %+v", cfg)
	}
	if _, ok := cfg.Logger.Handler().(*slog.TextHandler); !ok {
		t.Fatalf("console log format is %T, want text", cfg.Logger.Handler())
	}
	if _, err := parseConfig(t, "--log-format", "xml"); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("--log-format xml: %v", err)
	}
	for _, args := range [][]string{{"--metrics", "verbose"}, {"--listen-metrics-urls", "unix:///x"}} {
		cfg := parse(t, args...)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
