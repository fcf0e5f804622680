package framework

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape is one parsed scrape of a /metrics endpoint.
type Scrape map[string]*dto.MetricFamily

// ScrapeMetrics fetches url (a /metrics endpoint) as Prometheus does and
// parses it as Prometheus text; a body that does not parse fails the test.
func ScrapeMetrics(t testing.TB, url string) Scrape {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape %s: content type %q, want Prometheus text", url, ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: not Prometheus text: %v", url, err)
	}
	return fams
}

// Value is the value of the series of family name whose labels include
// those given as name, value pairs: a counter's or gauge's value, or a
// histogram's sample count. ok is false when there is no such series.
func (s Scrape) Value(name string, labels ...string) (v float64, ok bool) {
	f := s[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// Must is Value that fails the test when the series is missing.
func (s Scrape) Must(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, ok := s.Value(name, labels...)
	if !ok {
		t.Fatalf("no series %s%v in the scrape", name, labels)
	}
	return v
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// HTTPAnswer is what an HTTP endpoint answered, for comparing kvd's with
// etcd's.
type HTTPAnswer struct {
	Code        int
	ContentType string
	Body        string
}

func (a HTTPAnswer) String() string {
	return fmt.Sprintf("%d %q %q", a.Code, a.ContentType, a.Body)
}

// Get fetches url and returns its status, content type and body.
func Get(t testing.TB, url string) HTTPAnswer {
	t.Helper()
	return Do(t, http.MethodGet, url)
}

// Do makes a request with method to url, with no body.
func Do(t testing.TB, method, url string) HTTPAnswer {
	t.Helper()
	c := http.Client{Timeout: 30 * time.Second}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return HTTPAnswer{Code: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: string(b)}
}
