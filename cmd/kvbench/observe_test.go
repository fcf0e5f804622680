package main

import (
	"fmt"
	"os"
	"testing"
)

func TestStatusKiB(t *testing.T) {
	tests := []struct {
		name, status string
		want         int64
		wantErr      bool
	}{
		{"present", "Name:\tkvd\nVmPeak:\t  900 kB\nVmHWM:\t   51234 kB\nVmRSS:\t 4000 kB\n", 51234, false},
		{"last line without newline", "Name:\tkvd\nVmHWM:\t7 kB", 7, false},
		{"missing", "Name:\tkvd\nVmRSS:\t4000 kB\n", 0, true},
		{"other unit", "VmHWM:\t12 MB\n", 0, true},
		{"prefix of another field only", "VmHWMX:\t12 kB\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := statusKiB(tt.status, "VmHWM")
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("statusKiB = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// The observer reads real /proc files: this process's own.
func TestObserverReportsCPUAndPeakRSS(t *testing.T) {
	o := &options{serverPIDs: []int{os.Getpid()}}
	ob, err := o.observe()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32<<20) // touched, so it is resident
	for i := range buf {
		buf[i] = byte(i)
	}
	extra, err := ob.finish(10)
	if err != nil {
		t.Fatal(err)
	}
	var cpuMS int
	var perReq, rss float64
	if _, err := fmt.Sscanf(extra, " server_cpu_ms=%d cpu_us_per_req=%f peak_rss_mib=%f", &cpuMS, &perReq, &rss); err != nil {
		t.Fatalf("fields %q: %v", extra, err)
	}
	if rss < 32 {
		t.Errorf("peak RSS %.1f MiB, want at least the 32 MiB touched (fields %q)", rss, extra)
	}
	_ = buf[len(buf)-1]
}
