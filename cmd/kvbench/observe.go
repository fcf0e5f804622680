package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// What a run costs a server: with --scrape-interval, a scraper fetches
// every endpoint's /metrics at that interval while the load runs, as
// Prometheus would; with --server-pids, the servers' own CPU time over the
// run (utime+stime from /proc) is reported per request, which is the
// figure that carries to machines whose cores the load generator does not
// share, and so is their peak resident memory during the run (the sum of
// each process's peak).

// observer runs beside one measured run.
type observer struct {
	pids      []int
	cpuStart  time.Duration
	stopc     chan struct{}
	wg        sync.WaitGroup
	mu        sync.Mutex
	scrapes   int
	scrapeErr error
}

// observe starts what o asks for; stop it with finish.
func (o *options) observe() (*observer, error) {
	ob := &observer{pids: o.serverPIDs, stopc: make(chan struct{})}
	if len(ob.pids) > 0 {
		cpu, err := processCPU(ob.pids)
		if err != nil {
			return nil, err
		}
		ob.cpuStart = cpu
		resetPeakRSS(ob.pids)
	}
	if o.scrapeInterval > 0 {
		ob.wg.Add(1)
		go func() { defer ob.wg.Done(); ob.scrapeLoop(o.endpoints, o.scrapeInterval) }()
	}
	return ob, nil
}

func (ob *observer) scrapeLoop(endpoints []string, every time.Duration) {
	c := http.Client{Timeout: 10 * time.Second}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ob.stopc:
			return
		case <-t.C:
		}
		for _, ep := range endpoints {
			err := scrapeOnce(&c, "http://"+strings.TrimPrefix(ep, "http://")+"/metrics")
			ob.mu.Lock()
			ob.scrapes++
			if err != nil && ob.scrapeErr == nil {
				ob.scrapeErr = err
			}
			ob.mu.Unlock()
		}
	}
}

func scrapeOnce(c *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("scrape %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return nil
}

// finish stops the scraper and returns the fields to add to the RESULT
// line for a run of ok requests.
func (ob *observer) finish(ok int) (string, error) {
	close(ob.stopc)
	ob.wg.Wait()
	var extra strings.Builder
	if len(ob.pids) > 0 {
		cpu, err := processCPU(ob.pids)
		if err != nil {
			return "", err
		}
		used := cpu - ob.cpuStart
		fmt.Fprintf(&extra, " server_cpu_ms=%d", used.Milliseconds())
		if ok > 0 {
			fmt.Fprintf(&extra, " cpu_us_per_req=%.1f", float64(used.Microseconds())/float64(ok))
		}
		peak, err := peakRSS(ob.pids)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&extra, " peak_rss_mib=%.1f", float64(peak)/(1<<20))
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.scrapes > 0 {
		fmt.Fprintf(&extra, " scrapes=%d", ob.scrapes)
	}
	if ob.scrapeErr != nil {
		fmt.Fprintf(os.Stderr, "kvbench: %v\n", ob.scrapeErr)
	}
	return extra.String(), nil
}

// clockTick is the unit of /proc/<pid>/stat times: USER_HZ, 100 on every
// Linux architecture Go runs on.
const clockTick = 10 * time.Millisecond

// processCPU adds up the user and system CPU time of pids.
func processCPU(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0, fmt.Errorf("server cpu: %w", err)
		}
		// The command name, in parentheses, may hold spaces: count
		// fields after its closing parenthesis, where state is first
		// and utime, stime are the 12th and 13th.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			return 0, fmt.Errorf("server cpu: short /proc/%d/stat", pid)
		}
		for _, field := range f[11:13] {
			ticks, err := strconv.ParseInt(field, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("server cpu: /proc/%d/stat: %w", pid, err)
			}
			total += time.Duration(ticks) * clockTick
		}
	}
	return total, nil
}

// resetPeakRSS restarts the kernel's peak-RSS count of pids, so that the
// peak read at the end is this run's, not the process's lifetime one. It
// is best effort: where /proc/<pid>/clear_refs may not be written (another
// user's process, an old kernel), the peak read is the lifetime one.
func resetPeakRSS(pids []int) {
	for _, pid := range pids {
		// "5" resets the peak resident set size (Documentation/filesystems/proc.rst).
		_ = os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
	}
}

// peakRSS adds up the peak resident set size (VmHWM) of pids, in bytes.
func peakRSS(pids []int) (int64, error) { return sumStatus(pids, "VmHWM") }

// statusKiB reads the field name ("VmHWM:   1234 kB") of a
// /proc/<pid>/status text.
func statusKiB(status, name string) (int64, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", name, strings.TrimSpace(line))
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("no %s field", name)
}
