package outbound

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// countingServer is a loopback server that counts the connections it
// accepted and the requests it served.
type countingServer struct {
	*httptest.Server
	conns, requests atomic.Int64
}

func newCountingServer(t *testing.T) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		_, _ = w.Write([]byte("ok"))
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *countingServer) port(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func TestTransportRefusesPrivateDestinations(t *testing.T) {
	srv := newCountingServer(t)
	port := srv.port(t)
	reg := prometheus.NewRegistry()
	g := newGuard(t, Options{Registerer: reg})
	client := &http.Client{Transport: g.Transport(), Timeout: 10 * time.Second}

	tests := []struct {
		name string
		url  string
		host string
	}{
		{"loopback literal", "http://127.0.0.1:" + port + "/", "127.0.0.1"},
		{"localhost", "http://localhost:" + port + "/", "localhost"},
		{"IPv4-mapped IPv6", "http://[::ffff:127.0.0.1]:" + port + "/", "::ffff:127.0.0.1"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Get(tt.url)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET %s succeeded, want refusal", tt.url)
			}
			assertError(t, err, &mlerr.Error{Status: 400, Type: "illegal_argument_exception",
				Reason: "Remote inference host name has private ip address: " + tt.host}, ErrPrivateAddress)
			if got := testutil.ToFloat64(g.metrics.rejections.WithLabelValues(checkPrivateAddress)); got != float64(i+1) {
				t.Errorf("private_address rejections = %v, want %d", got, i+1)
			}
		})
	}
	if got := srv.conns.Load(); got != 0 {
		t.Errorf("server accepted %d connections, want 0", got)
	}
	if got := srv.requests.Load(); got != 0 {
		t.Errorf("server saw %d requests, want 0", got)
	}
}

func TestTransportAllowPrivate(t *testing.T) {
	srv := newCountingServer(t)
	g := newGuard(t, Options{AllowPrivate: true})
	client := &http.Client{Transport: g.Transport(), Timeout: 10 * time.Second}
	for _, u := range []string{srv.URL + "/", "http://localhost:" + srv.port(t) + "/"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", u, resp.StatusCode)
		}
	}
	if got := srv.requests.Load(); got != 2 {
		t.Errorf("server saw %d requests, want 2", got)
	}
}

func TestTransportSettings(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	tr := newGuard(t, Options{}).Transport()
	if tr.Proxy != nil {
		t.Error("Proxy is set; a proxy would bypass the address check")
	}
	if tr.DialContext == nil || tr.DialTLSContext != nil {
		t.Error("dialing does not go through Guard.DialContext")
	}
	if tr.MaxIdleConnsPerHost < 8 {
		t.Errorf("MaxIdleConnsPerHost = %d, want a pool larger than the default", tr.MaxIdleConnsPerHost)
	}
}

// The Control hook runs before connect, so these addresses are refused
// without a packet leaving the machine.
func TestDialContextRefusesBeforeConnect(t *testing.T) {
	g := newGuard(t, Options{DialTimeout: time.Second})
	for _, addr := range []string{
		"169.254.169.254:80",
		"[fd00:ec2::254]:80",
		"10.0.0.1:443",
		"100.100.100.200:80",
		"0.0.0.0:80",
		"[::]:80",
		"[64:ff9b::a9fe:a9fe]:80", // NAT64 form of 169.254.169.254
		"[2002:a9fe:a9fe::1]:80",  // 6to4 form of 169.254.169.254
		"[::ffff:0:a9fe:a9fe]:80", // SIIT form of 169.254.169.254
	} {
		t.Run(addr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := g.DialContext(ctx, "tcp", addr)
			if err == nil {
				conn.Close()
				t.Fatalf("DialContext(%s) connected, want refusal", addr)
			}
			if !errors.Is(err, ErrPrivateAddress) {
				t.Fatalf("DialContext(%s) = %v, want ErrPrivateAddress", addr, err)
			}
			host, _, _ := net.SplitHostPort(addr)
			if want := "Remote inference host name has private ip address: " + host; err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
		})
	}
}

func TestDialContextRejectsOtherNetworks(t *testing.T) {
	g := newGuard(t, Options{AllowPrivate: true})
	for _, network := range []string{"unix", "udp", "ip4:icmp"} {
		if conn, err := g.DialContext(context.Background(), network, "127.0.0.1:80"); err == nil {
			conn.Close()
			t.Errorf("DialContext(%q) = nil error, want refusal", network)
		} else if !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("DialContext(%q) = %v, want a not-allowed error", network, err)
		}
	}
}

func TestBlocked(t *testing.T) {
	tests := []struct {
		addr    string
		blocked bool
	}{
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"100.64.0.1", true},
		{"100.127.255.255", true},
		{"100.100.100.200", true},
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"169.254.169.254", true},
		{"169.254.0.1", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"240.0.0.1", true},
		{"255.255.255.255", true},
		{"::", true},
		{"::1", true},
		{"::127.0.0.1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"64:ff9b::7f00:1", true},
		// 6to4 (RFC 3056): 2002:AABB:CCDD::/48 is relayed to AA.BB.CC.DD.
		{"2002:7f00:1::1", true},           // 127.0.0.1
		{"2002:a9fe:a9fe::", true},         // 169.254.169.254
		{"2002:a00:1:1::1", true},          // 10.0.0.1
		{"2002:c0a8:101:ffff::abcd", true}, // 192.168.1.1
		{"2002::", true},                   // 0.0.0.0
		// SIIT IPv4-translated (RFC 2765, ::ffff:0:0:0/96) and
		// IPv4-mapped (::ffff:0:0/96) addresses carry the IPv4 address
		// in their last 32 bits.
		{"::ffff:0:7f00:1", true},    // 127.0.0.1
		{"::ffff:0:a9fe:a9fe", true}, // 169.254.169.254
		{"::ffff:0:a00:1", true},     // 10.0.0.1
		{"::ffff:7f00:1", true},      // 127.0.0.1
		{"fc00::1", true},
		{"fd00:ec2::254", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"fec0::1", true},
		{"ff02::1", true},
		{"ff0e::1", true},

		{"93.184.216.34", false},
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"100.63.255.255", false},
		{"100.128.0.0", false},
		{"172.15.255.255", false},
		{"172.32.0.1", false},
		{"192.169.0.1", false},
		{"169.255.0.1", false},
		{"11.0.0.1", false},
		{"::ffff:93.184.216.34", false},
		{"64:ff9b::808:808", false},
		{"2002:808:808::1", false},  // 6to4 of 8.8.8.8
		{"::ffff:0:808:808", false}, // SIIT of 8.8.8.8
		{"2003::1", false},
		{"2606:2800:220:1:248:1893:25c8:1946", false},
		{"2001:4860:4860::8888", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := blocked(netip.MustParseAddr(tt.addr)); got != tt.blocked {
				t.Errorf("blocked(%s) = %v, want %v", tt.addr, got, tt.blocked)
			}
		})
	}
	if !blocked(netip.Addr{}) {
		t.Error("blocked(zero Addr) = false, want true (fail closed)")
	}
}
