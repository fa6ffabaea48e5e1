// Command mlsidecar is a reverse-proxy sidecar in front of an OpenSearch
// cluster: it serves the ML Commons REST API itself and forwards all other
// traffic to the cluster untouched.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mlsidecar/mlsidecar/config"
	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/crypto"
	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
	"github.com/mlsidecar/mlsidecar/proxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "mlsidecar:", err)
		os.Exit(1)
	}
}

// run starts mlsidecar and blocks until ctx is done, then shuts down in order:
// readiness goes false, the proxy listener stops taking connections, in-flight
// requests drain up to the shutdown timeout, the internal listener closes last.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv, stdout)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	// Forwarded requests carry the caller's credentials only, so the proxy's
	// TLS configuration never holds the sidecar's client certificate.
	var proxyTLS = cfg.UpstreamTLS
	if proxyTLS != nil {
		proxyTLS = proxyTLS.Clone()
		proxyTLS.Certificates = nil
	}
	fwd := proxy.New(cfg.Upstream, proxy.NewTransport(proxy.TransportOptions{
		TLS:             proxyTLS,
		DialTimeout:     cfg.UpstreamDialTimeout,
		ResponseTimeout: cfg.UpstreamResponseTimeout,
	}), log, reg)

	store, err := indexstore.New(indexstore.Options{
		Upstream: cfg.Upstream, TLS: cfg.UpstreamTLS,
		Username: cfg.UpstreamUsername, Password: cfg.UpstreamPassword, Prefix: cfg.IndexPrefix,
	})
	if err != nil {
		return err
	}
	trusted := cfg.TrustedEndpoints
	if trusted == nil {
		trusted = outbound.DefaultTrustedEndpoints()
	}
	guard, err := outbound.New(outbound.Options{TrustedEndpoints: trusted, AllowPrivate: cfg.AllowPrivateEndpoints, Registerer: reg})
	if err != nil {
		return fmt.Errorf("trusted-endpoint-regex: %w", err)
	}
	batch, err := batchOptions(cfg)
	if err != nil {
		return err
	}
	ml := mlcommons.New(mlcommons.Options{
		Store: store, Guard: guard, Remote: remote.New(guard, log, reg), NodeID: cfg.NodeID,
		MaxBodyBytes: cfg.MaxRequestBodyBytes, Batch: batch, Logger: log, Registerer: reg,
	})
	// The caller's credentials go to the cluster for the check, so this
	// client must not present the sidecar's own certificate either.
	authn := auth.New(auth.Options{
		Upstream: cfg.Upstream, Client: &http.Client{Transport: proxy.NewTransport(proxy.TransportOptions{
			TLS: proxyTLS, DialTimeout: cfg.UpstreamDialTimeout, ResponseTimeout: 10 * time.Second,
		})},
		TTL: cfg.AuthCacheTTL, Registerer: reg, Logger: log,
	})
	handler := newMiddleware(newRouter(ml, authn.Middleware, fwd), log, reg)

	ready := newReadiness(reg, ml.Ready)
	checker := &upstreamChecker{
		client:   newServiceClient(cfg),
		upstream: cfg.Upstream,
		interval: cfg.UpstreamCheckInterval,
		ready:    ready,
		log:      log,
	}

	mainLn, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen-address: %w", err)
	}
	internalLn, err := net.Listen("tcp", cfg.InternalListenAddress)
	if err != nil {
		mainLn.Close()
		return fmt.Errorf("internal-listen-address: %w", err)
	}

	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	mainSrv := &http.Server{
		Handler: handler,
		// No read or write timeout: bulk uploads and scrolls may be long.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          errLog,
	}
	internalSrv := &http.Server{
		Handler:           newInternalMux(reg, ready),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          errLog,
	}

	checkCtx, stopCheck := context.WithCancel(context.WithoutCancel(ctx))
	checkDone := make(chan struct{})
	go func() {
		defer close(checkDone)
		checker.run(checkCtx)
	}()
	initDone := make(chan struct{})
	go func() {
		defer close(initDone)
		initML(checkCtx, store, ml, cfg.MasterKeys, log)
	}()
	pollerDone := make(chan struct{})
	go func() {
		defer close(pollerDone)
		ml.RunPoller(checkCtx, cfg.NodeID+"/"+newRequestID())
	}()

	serveErr := make(chan error, 2)
	go func() { serveErr <- mainSrv.Serve(mainLn) }()
	go func() { serveErr <- internalSrv.Serve(internalLn) }()
	log.Info("mlsidecar started",
		"listen_address", mainLn.Addr().String(),
		"internal_listen_address", internalLn.Addr().String(),
		"upstream", cfg.Upstream.Redacted())

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	case runErr = <-serveErr:
		log.Error("server failed", "err", runErr)
	}

	ready.stop()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := mainSrv.Shutdown(shutdownCtx); err != nil {
		log.Warn("in-flight requests did not drain in time; closing them", "err", err)
		mainSrv.Close()
	}
	stopCheck()
	<-checkDone
	<-initDone
	<-pollerDone
	internalCtx, cancelInternal := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancelInternal()
	if err := internalSrv.Shutdown(internalCtx); err != nil {
		internalSrv.Close()
	}
	log.Info("stopped")
	return runErr
}

// initML creates the sidecar's indices and loads the credential keys,
// retrying until it succeeds (the cluster may not be up yet); the ML API and
// readiness wait for it.
func initML(ctx context.Context, store *indexstore.Store, ml *mlcommons.API, keyFile []byte, log *slog.Logger) {
	backoff := 500 * time.Millisecond
	for {
		err := store.EnsureIndices(ctx)
		if err == nil {
			var keys *crypto.Keyring
			keys, err = mlcommons.LoadKeyring(ctx, store, keyFile, func() int64 { return time.Now().UnixMilli() }, log)
			if err == nil {
				ml.SetKeyring(keys)
				log.Info("ML Commons API ready")
				return
			}
		}
		log.Warn("ML Commons API not ready yet; retrying", "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// batchOptions turns the batch settings into the API's options.
func batchOptions(cfg *config.Config) (mlcommons.BatchOptions, error) {
	rules := mlcommons.StatusRules{Fields: cfg.BatchStatusFields}
	for _, state := range []string{"cancelling", "cancelled", "completed", "expired", "failed"} {
		re, err := regexp.Compile("(?i)" + cfg.BatchStatusRegex[state])
		if err != nil {
			return mlcommons.BatchOptions{}, fmt.Errorf("batch-status-regex-%s: %w", state, err)
		}
		rules.Rules = append(rules.Rules, mlcommons.StatusRule{State: strings.ToUpper(state), Regex: re})
	}
	return mlcommons.BatchOptions{
		PollInterval: cfg.BatchPollInterval, MaxPollFailures: cfg.BatchMaxPollFailures, MaxTasks: cfg.MaxBatchInferenceTasks,
		Concurrency: cfg.BatchPollConcurrency, RatePerConnector: cfg.BatchPollRate, LeaseTTL: cfg.BatchLeaseTTL, Status: rules,
	}, nil
}
