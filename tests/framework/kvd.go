package framework

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Member is one server process (kvd or etcd) started by a test on
// 127.0.0.1 ports. It is stopped when the test ends.
type Member struct {
	Name     string
	Bin      string
	DataDir  string
	Endpoint string // host:port of the client URL
	PeerURL  string
	// AdvertisePeerURL, when set, is the peer URL the member advertises
	// instead of PeerURL, where it listens: a proxy's, for fault tests.
	AdvertisePeerURL string
	Extra            []string
	// Cluster is the --initial-cluster value; empty for a single member.
	Cluster string
	// NoInitialCluster leaves --initial-cluster off the command line, for
	// a member that finds its cluster through discovery flags in Extra.
	NoInitialCluster bool
	// Env is added to the process environment.
	Env []string
	// TLS, when set, makes the client URL https:// and is the client
	// configuration of the health probe.
	TLS *tls.Config
	// ExitCode is the status of the last process once it has stopped.
	ExitCode int

	t      testing.TB
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	log    *lockedBuffer
	// earlier holds the logs of the process's earlier runs, for
	// FullLog: a member killed and restarted starts a fresh log.
	earlier strings.Builder
}

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// KvdBin returns the kvd binary: $KVD_BIN when set, bin/kvd when make
// built it, otherwise one built once per test process.
func KvdBin(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("KVD_BIN"); b != "" {
		return b
	}
	return ourBinary(t, "kvd", false)
}

func goBuild(out, pkg string) error {
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// StartKvd starts a single-member kvd with a fresh data dir. extra flags
// are appended to the command line.
func StartKvd(t testing.TB, extra ...string) *Member {
	return startMember(t, KvdBin(t), "kvd", extra)
}

// StartEtcd starts a single-member reference etcd v3.7.3 the same way,
// or skips the test when the binary is missing outside CI.
func StartEtcd(t testing.TB, extra ...string) *Member {
	return startMember(t, RequireBin(t, EtcdBin()), "etcd", extra)
}

// StartEtcdMember is StartEtcd under its earlier name.
func StartEtcdMember(t testing.TB, extra ...string) *Member { return StartEtcd(t, extra...) }

// RequireBin skips the test when a reference binary is missing, except in
// CI, where the Makefile must have built it and its absence is a failure.
func RequireBin(t testing.TB, bin string) string {
	t.Helper()
	if fileExists(bin) {
		return bin
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("reference binary %s is missing; run make tools", bin)
	}
	t.Skipf("reference binary %s is missing; run make tools", bin)
	return ""
}

func startMember(t testing.TB, bin, name string, extra []string) *Member {
	t.Helper()
	return StartMemberAt(t, bin, name, PickPort(t), PickPort(t), extra...)
}

// StartMemberAt starts bin (kvd or etcd) as a single-member cluster named
// name on the given 127.0.0.1 ports with a fresh data dir. Two servers
// started alike one after the other get the same member and cluster IDs,
// which lets tests compare their outputs byte for byte.
func StartMemberAt(t testing.TB, bin, name string, clientPort, peerPort int, extra ...string) *Member {
	t.Helper()
	m := NewMemberAt(t, bin, name, clientPort, peerPort, extra...)
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// NewMemberAt prepares a member like StartMemberAt without starting it,
// so a test can set Env first.
func NewMemberAt(t testing.TB, bin, name string, clientPort, peerPort int, extra ...string) *Member {
	return &Member{
		Name:     name,
		Bin:      bin,
		DataDir:  filepath.Join(t.TempDir(), name+".data"),
		Endpoint: "127.0.0.1:" + strconv.Itoa(clientPort),
		PeerURL:  "http://127.0.0.1:" + strconv.Itoa(peerPort),
		Extra:    extra,
		t:        t,
	}
}

// Args is the member's command line.
func (m *Member) Args() []string {
	client := m.ClientURL()
	args := []string{
		"--name", m.Name, "--data-dir", m.DataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.advertisedPeerURL(),
		"--log-level", "warn",
	}
	if !m.NoInitialCluster {
		args = append(args, "--initial-cluster", m.initialCluster())
	}
	return append(args, m.Extra...)
}

// ClientURL is the member's client URL: http:// or, with TLS, https://.
func (m *Member) ClientURL() string {
	if m.TLS != nil {
		return "https://" + m.Endpoint
	}
	return "http://" + m.Endpoint
}

func (m *Member) initialCluster() string {
	if m.Cluster != "" {
		return m.Cluster
	}
	return m.Name + "=" + m.advertisedPeerURL()
}

func (m *Member) advertisedPeerURL() string {
	if m.AdvertisePeerURL != "" {
		return m.AdvertisePeerURL
	}
	return m.PeerURL
}

// RSS returns the process's resident memory in bytes, read from /proc.
func (m *Member) RSS() (int64, error) {
	m.mu.Lock()
	cmd := m.cmd
	m.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("%s is not running", m.Name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", cmd.Process.Pid)
}

// Healthy says whether the member's /health answers true right now.
func (m *Member) Healthy() bool {
	client := http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: m.TLS}}
	// A member with an alarm active serves, but its /health says false
	// unless the alarm is excluded, as etcd's.
	resp, err := client.Get(m.ClientURL() + "/health?exclude=NOSPACE&exclude=CORRUPT")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Start (re)starts the process and waits until it serves /health.
func (m *Member) Start() {
	m.t.Helper()
	m.Launch()
	m.WaitHealthy(20 * time.Second)
}

// Launch starts the process without waiting for it to be healthy, which a
// member of a new cluster cannot be until a quorum has started.
func (m *Member) Launch() {
	m.t.Helper()
	m.mu.Lock()
	if m.log != nil {
		m.earlier.WriteString(m.log.String())
		m.earlier.WriteString("--- restarted ---\n")
	}
	m.log = new(lockedBuffer)
	cmd := exec.Command(m.Bin, m.Args()...)
	cmd.Env = append(os.Environ(), m.Env...)
	cmd.Stdout = m.log
	cmd.Stderr = m.log
	if err := cmd.Start(); err != nil {
		m.mu.Unlock()
		m.t.Fatalf("start %s: %v", m.Name, err)
	}
	m.cmd = cmd
	m.exited = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(m.exited)
	m.mu.Unlock()
}

// WaitHealthy waits until /health answers true. A process that exits
// meanwhile fails the test at once: whatever answers on its port then is
// not this member.
func (m *Member) WaitHealthy(d time.Duration) {
	m.t.Helper()
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			m.t.Fatalf("%s at %s exited before it was healthy; log:\n%s", m.Name, m.Endpoint, m.Log())
		default:
		}
		if m.Healthy() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.t.Fatalf("%s at %s not healthy after %v; log:\n%s", m.Name, m.Endpoint, d, m.Log())
}

// WaitExit waits up to d for the process to exit by itself and returns
// its exit code; ok is false when it still runs.
func (m *Member) WaitExit(d time.Duration) (code int, ok bool) {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return m.ExitCode, true
	}
	select {
	case <-m.exited:
	case <-time.After(d):
		return 0, false
	}
	m.ExitCode = m.cmd.ProcessState.ExitCode()
	m.cmd = nil
	return m.ExitCode, true
}

// StartKvdDiscovery launches n kvd members of a new cluster that find one
// another through the discovery flags in extra (no --initial-cluster),
// and waits until every one is healthy. flagsFor, when not nil, adds
// flags for one member, such as its advertised peer URL's port.
func StartKvdDiscovery(t testing.TB, n int, flagsFor func(m *Member) []string, extra ...string) []*Member {
	t.Helper()
	ms := NewKvdDiscoveryMembers(t, n, extra...)
	for _, m := range ms {
		if flagsFor != nil {
			m.Extra = append(m.Extra, flagsFor(m)...)
		}
		m.Launch()
		t.Cleanup(m.Stop)
	}
	for _, m := range ms {
		m.WaitHealthy(30 * time.Second)
	}
	return ms
}

// NewKvdDiscoveryMembers prepares n kvd members named m1, m2, ... on free
// 127.0.0.1 ports that bootstrap through the discovery flags in extra,
// without starting them.
func NewKvdDiscoveryMembers(t testing.TB, n int, extra ...string) []*Member {
	t.Helper()
	bin := KvdBin(t)
	ms := make([]*Member, n)
	for i := range ms {
		ms[i] = NewMemberAt(t, bin, fmt.Sprintf("m%d", i+1), PickPort(t), PickPort(t), slices.Clone(extra)...)
		ms[i].NoInitialCluster = true
	}
	return ms
}

// Kill stops the process with SIGKILL, as a crash would.
func (m *Member) Kill() { m.signal(syscall.SIGKILL) }

// Stop stops the process with SIGTERM and waits for it to exit.
func (m *Member) Stop() { m.signal(syscall.SIGTERM) }

// Pause freezes the process with SIGSTOP: it keeps its sockets but
// answers nothing, like a member stuck in a long GC pause or swapping.
func (m *Member) Pause() { m.notify(syscall.SIGSTOP) }

// Resume lets a paused process run again (SIGCONT).
func (m *Member) Resume() { m.notify(syscall.SIGCONT) }

// notify sends sig to a running process without waiting for anything.
func (m *Member) notify(sig syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		_ = m.cmd.Process.Signal(sig)
	}
}

func (m *Member) signal(sig syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(sig)
	if sig != syscall.SIGKILL {
		// A paused process acts on nothing but SIGKILL until it runs.
		_ = m.cmd.Process.Signal(syscall.SIGCONT)
	}
	select {
	case <-m.exited:
	case <-time.After(15 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	m.ExitCode = m.cmd.ProcessState.ExitCode()
	m.cmd = nil
}

// Log returns what the process printed since it last started.
func (m *Member) Log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.log == nil {
		return ""
	}
	return m.log.String()
}

// FullLog returns what the process printed in all its runs, each restart
// marked.
func (m *Member) FullLog() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.log == nil {
		return m.earlier.String()
	}
	return m.earlier.String() + m.log.String()
}

// CrashCluster kills every member of ms with -9 at once, waits down, and
// starts them all again, waiting until each is healthy: a member is
// healthy only once a quorum runs, so they start together.
func CrashCluster(ms []*Member, down time.Duration) {
	for _, m := range ms {
		m.Kill()
	}
	time.Sleep(down)
	for _, m := range ms {
		m.Launch()
	}
	for _, m := range ms {
		m.WaitHealthy(30 * time.Second)
	}
}

// StartKvdCluster starts n kvd members forming one new cluster on
// 127.0.0.1 ports and waits until every one is healthy.
func StartKvdCluster(t testing.TB, n int, extra ...string) []*Member {
	t.Helper()
	return StartCluster(t, KvdBin(t), n, extra...)
}

// StartCluster starts n members of bin (kvd or etcd) forming one new
// cluster and waits until every one is healthy. They are stopped when the
// test ends.
func StartCluster(t testing.TB, bin string, n int, extra ...string) []*Member {
	t.Helper()
	return startCluster(t, bin, n, nil, extra)
}

// StartKvdClusterBehindProxies starts n kvd members whose peer traffic
// reaches each of them through a Proxy, returned in the same order, so a
// test can cut any member off.
func StartKvdClusterBehindProxies(t testing.TB, n int, extra ...string) ([]*Member, []*Proxy) {
	t.Helper()
	proxies := make([]*Proxy, n)
	ms := startCluster(t, KvdBin(t), n, proxies, extra)
	return ms, proxies
}

func startCluster(t testing.TB, bin string, n int, proxies []*Proxy, extra []string) []*Member {
	t.Helper()
	return startClusterWith(t, bin, n, proxies, extra, nil)
}

// startClusterWith is startCluster whose prep, when not nil, readies each
// member (its URLs, its TLS) before the cluster is named.
func startClusterWith(t testing.TB, bin string, n int, proxies []*Proxy, extra []string, prep func(*Member)) []*Member {
	t.Helper()
	ms := make([]*Member, n)
	cluster := ""
	for i := range ms {
		ms[i] = NewMemberAt(t, bin, fmt.Sprintf("m%d", i+1), PickPort(t), PickPort(t), extra...)
		if prep != nil {
			prep(ms[i])
		}
		if proxies != nil {
			proxies[i] = StartProxy(t, strings.TrimPrefix(ms[i].PeerURL, "http://"))
			ms[i].AdvertisePeerURL = "http://" + proxies[i].Addr()
		}
		if i > 0 {
			cluster += ","
		}
		cluster += ms[i].Name + "=" + ms[i].advertisedPeerURL()
	}
	for _, m := range ms {
		m.Cluster = cluster
		m.Launch()
		t.Cleanup(m.Stop)
	}
	for _, m := range ms {
		m.WaitHealthy(30 * time.Second)
	}
	return ms
}

// NewJoiningMember prepares a member that joins the cluster of ms with
// --initial-cluster-state=existing, at peerURL (which `member add` must
// have named). Start it with Launch; it is stopped when the test ends.
func NewJoiningMember(t testing.TB, ms []*Member, name, peerURL string, extra ...string) *Member {
	t.Helper()
	m := NewMemberAt(t, ms[0].Bin, name, PickPort(t), 0, append([]string{"--initial-cluster-state", "existing"}, extra...)...)
	m.PeerURL = peerURL
	m.Cluster = ms[0].Cluster + "," + name + "=" + peerURL
	t.Cleanup(m.Stop)
	return m
}

// Endpoints joins the members' client endpoints with commas, as
// --endpoints takes them.
func Endpoints(ms []*Member) string {
	eps := make([]string, len(ms))
	for i, m := range ms {
		eps[i] = m.Endpoint
	}
	return strings.Join(eps, ",")
}
