// A Kubernetes API client as client-go makes one: Go's net/http transport, HTTP/2 over TLS
// (one connection shared by every request to a host), HTTP/1.1 to plain http:// URLs.
// It measures several paths side by side, interleaved so that a noisy machine slows them all
// alike: sequential latency in blocks of requests taken in turn, then throughput with -c
// concurrent workers in slots taken in turn. It prints JSON, one entry per path.
//
// h2client TARGETS_JSON N BLOCK C SLOTS DURATION
//
// A second mode measures new sessions as a fresh `kubectl get` makes them: each a new TLS
// connection (HTTP/2), a discovery request (the target's Discovery URL) and the GET, with C workers
// in slots of DURATION, paths in turn; it prints sessions/s per slot and the session p50.
//
// h2client sessions TARGETS_JSON C SLOTS DURATION
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Target is one path to measure; Pid, when set, is a process whose CPU is read around its slots.
type Target struct {
	Name  string `json:"name"`
	URL   string `json:"url"`
	CA    string `json:"ca"`
	Cert  string `json:"cert"`
	Key   string `json:"key"`
	Token string `json:"token"`
	Pid   int    `json:"pid"`
	// Pids are more processes whose CPU counts with Pid's (the server and its agent).
	Pids []int `json:"pids"`
	// Discovery is the URL a new session asks first (sessions mode).
	Discovery string `json:"discovery"`
	// Headers are added to every request (each value its own header line).
	Headers map[string][]string `json:"headers"`
}

type Result struct {
	Name             string    `json:"name"`
	Proto            string    `json:"proto"`
	P50              float64   `json:"p50_ms"`
	P99              float64   `json:"p99_ms"`
	RPS              []float64 `json:"rps"`
	ProcessCPUPerReq []float64 `json:"process_cpu_ms_per_request,omitempty"`
	ClientCPUPerReq  []float64 `json:"client_cpu_ms_per_request"`
}

type path struct {
	Target
	client *http.Client
	proto  string
}

func main() {
	if os.Args[1] == "sessions" {
		sessions(os.Args[2:])
		return
	}
	var targets []Target
	check(json.Unmarshal([]byte(os.Args[1]), &targets))
	n, block, c, slots := atoi(os.Args[2]), atoi(os.Args[3]), atoi(os.Args[4]), atoi(os.Args[5])
	d, err := time.ParseDuration(os.Args[6])
	check(err)
	paths := make([]*path, len(targets))
	for i, t := range targets {
		paths[i] = &path{Target: t, client: newClient(t)}
	}
	// Warm-up, not counted: 200 sequential requests and one slot of d under load per path, so a
	// JIT-compiled proxy, its connection pools and the API server's are in their steady state.
	for _, p := range paths {
		for i := 0; i < 200; i++ {
			p.get()
		}
		p.slot(c, d)
	}
	// Latency: blocks of `block` sequential requests per path, paths in turn; a block's first
	// request (after another path had the machine) is not counted.
	latencies := make([][]float64, len(paths))
	for r := 0; r < n/(block-1); r++ {
		for k := range paths {
			i := (k + r) % len(paths)
			for b := 0; b < block; b++ {
				start := time.Now()
				paths[i].get()
				if b > 0 {
					latencies[i] = append(latencies[i], float64(time.Since(start).Microseconds())/1000)
				}
			}
		}
	}
	results := make([]Result, len(paths))
	for i, p := range paths {
		sort.Float64s(latencies[i])
		l := latencies[i]
		results[i] = Result{Name: p.Name, Proto: p.proto, P50: l[len(l)/2], P99: l[len(l)*99/100]}
	}
	// Throughput: `slots` slots of d per path with c workers, paths in turn.
	for s := 0; s < slots; s++ {
		for k := range paths {
			i := (k + s) % len(paths)
			p := paths[i]
			cpuBefore, processBefore := selfCPU(), p.processCPU()
			requests := p.slot(c, d)
			results[i].RPS = append(results[i].RPS, requests/d.Seconds())
			results[i].ClientCPUPerReq = append(results[i].ClientCPUPerReq, (selfCPU()-cpuBefore)/requests)
			if p.Pid != 0 {
				results[i].ProcessCPUPerReq = append(results[i].ProcessCPUPerReq, (p.processCPU()-processBefore)/requests)
			}
		}
	}
	out, err := json.Marshal(results)
	check(err)
	fmt.Println(string(out))
}

// slot runs c workers making requests for d and returns how many they made.
func (p *path) slot(c int, d time.Duration) float64 {
	var count atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				p.get()
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(count.Load())
}

func newClient(t Target) *http.Client {
	tlsConfig := &tls.Config{}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		check(err)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tlsConfig.RootCAs = pool
	}
	if t.Cert != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		check(err)
		tlsConfig.Certificates = []tls.Certificate{pair}
	}
	// client-go: http2.ConfigureTransport on a transport with a custom TLS config.
	transport := &http.Transport{TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 25}
	return &http.Client{Transport: transport, Timeout: 30 * time.Second}
}

func (p *path) get() {
	p.getURL(p.URL)
}

func (p *path) getURL(url string) {
	req, err := http.NewRequest("GET", url, nil)
	check(err)
	req.Header.Set("Accept", "application/json")
	if p.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.Token)
	}
	for name, values := range p.Headers {
		req.Header[name] = values
	}
	res, err := p.client.Do(req)
	check(err)
	_, err = io.Copy(io.Discard, res.Body)
	check(err)
	res.Body.Close()
	if res.StatusCode != 200 {
		check(fmt.Errorf("HTTP %d from %s", res.StatusCode, url))
	}
	p.proto = res.Proto
}

// processCPU is the CPU so far of the path's process and its helpers, in milliseconds.
func (p *path) processCPU() float64 {
	total := processCPU(p.Pid)
	for _, pid := range p.Pids {
		total += processCPU(pid)
	}
	return total
}

type SessionResult struct {
	Name             string    `json:"name"`
	Proto            string    `json:"proto"`
	PerSecond        []float64 `json:"sessions_per_s"`
	P50              float64   `json:"p50_ms"`
	ProcessCPUPerSes []float64 `json:"process_cpu_ms_per_session,omitempty"`
}

// sessions: C workers, each making whole sessions (new client, so a new TLS connection; the
// discovery GET; the GET; the connection closed) for DURATION, SLOTS slots per path in turn, after
// one uncounted slot per path.
func sessions(args []string) {
	var targets []Target
	check(json.Unmarshal([]byte(args[0]), &targets))
	c, slots := atoi(args[1]), atoi(args[2])
	d, err := time.ParseDuration(args[3])
	check(err)
	results := make([]SessionResult, len(targets))
	latencies := make([][]float64, len(targets))
	var mu sync.Mutex
	slot := func(i int, record bool) float64 {
		t := targets[i]
		var count atomic.Int64
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := 0; w < c; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					start := time.Now()
					p := &path{Target: t, client: newClient(t)}
					p.getURL(t.Discovery)
					p.get()
					p.client.CloseIdleConnections()
					count.Add(1)
					if record {
						mu.Lock()
						latencies[i] = append(latencies[i], float64(time.Since(start).Microseconds())/1000)
						results[i].Proto = p.proto
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		return float64(count.Load())
	}
	for i := range targets {
		slot(i, false)
	}
	for s := 0; s < slots; s++ {
		for k := range targets {
			i := (k + s) % len(targets)
			p := &path{Target: targets[i]}
			before := p.processCPU()
			n := slot(i, true)
			results[i].PerSecond = append(results[i].PerSecond, n/d.Seconds())
			if p.Pid != 0 {
				results[i].ProcessCPUPerSes = append(results[i].ProcessCPUPerSes, (p.processCPU()-before)/n)
			}
		}
	}
	for i, t := range targets {
		sort.Float64s(latencies[i])
		results[i].Name = t.Name
		results[i].P50 = latencies[i][len(latencies[i])/2]
	}
	out, err := json.Marshal(results)
	check(err)
	fmt.Println(string(out))
}

// selfCPU is this process's user+system CPU so far, in milliseconds.
func selfCPU() float64 {
	var u syscall.Rusage
	check(syscall.Getrusage(syscall.RUSAGE_SELF, &u))
	return float64(u.Utime.Nano()+u.Stime.Nano()) / 1e6
}

// processCPU is another process's user+system CPU so far, in milliseconds (from /proc, 100 Hz ticks).
func processCPU(pid int) float64 {
	if pid == 0 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) * 10
}

func atoi(s string) int {
	v, err := strconv.Atoi(s)
	check(err)
	return v
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
