// Command goproxy is bench-proxy's second yardstick: a bare
// httputil.ReverseProxy with the same transport settings as mlsidecar's
// forwarding path and nothing else — no router, middleware, metrics or logs.
// mlsidecar/goproxy is what the sidecar's own layers cost; goproxy/nginx is
// what Go's HTTP stack costs.
package main

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: goproxy LISTEN-ADDRESS UPSTREAM-URL")
		os.Exit(2)
	}
	upstream, err := url.Parse(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 1024, 1024
	t.DisableCompression = true
	t.WriteBufferSize, t.ReadBufferSize = 64<<10, 64<<10
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
		},
		Transport: t,
	}
	if err := http.ListenAndServe(os.Args[1], rp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
