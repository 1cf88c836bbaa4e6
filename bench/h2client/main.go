// A Kubernetes API client as client-go makes one: Go's net/http transport, HTTP/2 over TLS
// (one connection shared by every request to a host), HTTP/1.1 to plain http:// URLs.
// It measures sequential latency, then throughput with -c concurrent workers, and prints JSON.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// cpuMs is this process's user+system CPU so far, in milliseconds.
func cpuMs() float64 {
	var u syscall.Rusage
	check(syscall.Getrusage(syscall.RUSAGE_SELF, &u))
	return float64(u.Utime.Nano()+u.Stime.Nano()) / 1e6
}

func main() {
	url := flag.String("url", "", "full URL to GET")
	caFile := flag.String("ca", "", "CA bundle (PEM) for https")
	certFile := flag.String("cert", "", "client certificate (PEM)")
	keyFile := flag.String("key", "", "client key (PEM)")
	token := flag.String("token", "", "bearer token")
	warmup := flag.Int("warmup", 200, "requests before measuring")
	n := flag.Int("n", 1000, "sequential requests for latency")
	c := flag.Int("c", 32, "concurrent workers for throughput")
	d := flag.Duration("d", 5*time.Second, "throughput duration")
	flag.Parse()

	tlsConfig := &tls.Config{}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		check(err)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tlsConfig.RootCAs = pool
	}
	if *certFile != "" {
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		check(err)
		tlsConfig.Certificates = []tls.Certificate{pair}
	}
	// client-go: http2.ConfigureTransport on a transport with a custom TLS config.
	transport := &http.Transport{TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 25}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	proto := ""
	get := func() {
		req, err := http.NewRequest("GET", *url, nil)
		check(err)
		req.Header.Set("Accept", "application/json")
		if *token != "" {
			req.Header.Set("Authorization", "Bearer "+*token)
		}
		res, err := client.Do(req)
		check(err)
		_, err = io.Copy(io.Discard, res.Body)
		check(err)
		res.Body.Close()
		if res.StatusCode != 200 {
			check(fmt.Errorf("HTTP %d from %s", res.StatusCode, *url))
		}
		proto = res.Proto
	}
	for i := 0; i < *warmup; i++ {
		get()
	}
	latencies := make([]float64, *n)
	for i := range latencies {
		start := time.Now()
		get()
		latencies[i] = float64(time.Since(start).Microseconds()) / 1000
	}
	sort.Float64s(latencies)
	var count atomic.Int64
	cpuBefore := cpuMs()
	deadline := time.Now().Add(*d)
	var wg sync.WaitGroup
	for w := 0; w < *c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				get()
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	cpu := cpuMs() - cpuBefore
	out, _ := json.Marshal(map[string]any{
		"p50_ms":   latencies[len(latencies)/2],
		"p99_ms":   latencies[len(latencies)*99/100],
		"rps":      float64(count.Load()) / d.Seconds(),
		"requests": count.Load(),
		"proto":    proto,
		// The client's own CPU per request in the concurrent phase: TLS and HTTP/2 cost it too.
		"client_cpu_ms_per_request": cpu / float64(count.Load()),
	})
	fmt.Println(string(out))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
