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
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/mlsidecar/mlsidecar/config"
	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/batch"
	"github.com/mlsidecar/mlsidecar/mlcommons/ingest"
	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
	"github.com/mlsidecar/mlsidecar/mlcommons/settings"
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
		MaxHeaderBytes:  cfg.MaxRequestHeaderBytes,
	}), log, reg)

	store, err := indexstore.New(indexstore.Options{
		Upstream: cfg.Upstream, TLS: cfg.UpstreamTLS,
		Username: cfg.UpstreamUsername, Password: cfg.UpstreamPassword, Prefix: cfg.IndexPrefix,
		CallTimeout: cfg.IndexCallTimeout,
	})
	if err != nil {
		return err
	}
	guard, err := outbound.New(outbound.Options{TrustedEndpoints: cfg.TrustedEndpoints, AllowPrivate: cfg.AllowPrivateEndpoints, Registerer: reg})
	if err != nil {
		return err
	}
	engine := remote.New(guard, log, reg)
	authz := auth.NewAuthorizer(auth.AuthorizerOptions{
		Source: clusterPermissions(store), Refresh: cfg.SecurityConfigRefresh,
		FullAccessRoles: cfg.MLFullAccessRoles, ReadOnlyRoles: cfg.MLReadOnlyRoles, Logger: log,
	})
	ml := mlcommons.New(mlcommons.Options{
		Store: store, Guard: guard, Remote: engine, NodeID: cfg.NodeID,
		MaxBodyBytes: cfg.MaxRequestBodyBytes, MaxInflightBodyBytes: cfg.MaxInflightMLBodyBytes, BodyReadTimeout: cfg.MLBodyReadTimeout,
		Authorizer: authz, StoredKeyAllowed: cfg.AllowStoredMasterKey,
		ModelAccessControl: cfg.ModelAccessControl, ConnectorAccessControl: cfg.ConnectorAccessControl, Batch: batchSettings(cfg),
		Ingest: ingest.Options{OpenAIBaseURL: cfg.IngestOpenAIURL, S3Endpoint: cfg.IngestS3Endpoint, Concurrency: cfg.IngestConcurrency},
		Logger: log, Registerer: reg, Now: time.Now,
	})
	mlSettings, err := settings.New(settings.Options{
		Repo: store.MLSettings(), Mode: cfg.MLSettings, Flags: mlSettingsFlags(cfg), Logger: log, Now: time.Now,
		Apply: func(e *settings.Effective) {
			if guard.Update(e.TrustedEndpoints, e.AllowPrivateEndpoints) {
				engine.Reset() // pooled connections to private addresses
			}
			ml.ApplySettings(e)
		},
	})
	if err != nil {
		return err
	}
	// The caller's credentials go to the cluster for the check, so this
	// client must not present the sidecar's own certificate either.
	authn := auth.New(auth.Options{
		Upstream: cfg.Upstream, Client: &http.Client{Transport: proxy.NewTransport(proxy.TransportOptions{
			TLS: proxyTLS, DialTimeout: cfg.UpstreamDialTimeout, ResponseTimeout: 10 * time.Second,
			MaxHeaderBytes: cfg.MaxRequestHeaderBytes,
		})},
		TTL: cfg.AuthCacheTTL, Registerer: reg, Logger: log, Unauthenticated: cfg.Authentication == "none",
	})
	handler := newMiddleware(newRouter(ml, authn.Middleware, ml.ClusterSettings(mlSettings, fwd), fwd), log, reg, cfg.MaxRequestHeaderBytes)

	ready := newReadiness(reg, func() bool { return ml.Ready() && mlSettings.Loaded() })
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

	// The background group outlives ctx: it stops only after the proxy
	// listener has drained, so in-flight requests keep a ready upstream
	// check and a running worker until then.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var background errgroup.Group
	background.Go(func() error { checker.run(bgCtx); return nil })
	background.Go(func() error {
		if ml.Bootstrap(bgCtx, cfg.MasterKeys) != nil {
			return nil // stopped before the cluster was ready
		}
		background.Go(func() error { mlSettings.Watch(bgCtx, cfg.MLSettingsRefresh); return nil })
		checkAuthentication(bgCtx, store, cfg.Authentication, log)
		// Read the role definitions now, so a sidecar that must fall back to
		// role names says so at start-up; requests read them again if this
		// fails.
		if err := authz.Load(bgCtx); err != nil {
			log.Warn("cannot read the cluster's security configuration yet", "err", err)
		}
		owner := cfg.NodeID + "/" + newRequestID()
		background.Go(func() error { ml.IngestWorker(owner).Run(bgCtx); return nil })
		ml.Worker(owner).Run(bgCtx)
		return nil
	})

	var servers errgroup.Group
	serveErr := make(chan error, 2)
	servers.Go(func() error { serveErr <- mainSrv.Serve(mainLn); return nil })
	servers.Go(func() error { serveErr <- internalSrv.Serve(internalLn); return nil })
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
	stopBackground()
	_ = background.Wait()
	internalCtx, cancelInternal := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancelInternal()
	if err := internalSrv.Shutdown(internalCtx); err != nil {
		internalSrv.Close()
	}
	_ = servers.Wait()
	log.Info("stopped")
	return runErr
}

// batchSettings are the batch limits and polling rules of the
// configuration.
func batchSettings(cfg *config.Config) batch.Settings {
	rules := batch.StatusRules{Fields: cfg.BatchStatusFields}
	for _, r := range cfg.BatchStatusRules {
		rules.Rules = append(rules.Rules, batch.StatusRule{State: r.State, Regex: r.Regex})
	}
	return batch.Settings{
		PollInterval: cfg.BatchPollInterval, MaxPollFailures: cfg.BatchMaxPollFailures, MaxTasks: cfg.MaxBatchInferenceTasks,
		Concurrency: cfg.BatchPollConcurrency, RatePerConnector: cfg.BatchPollRate, LeaseTTL: cfg.BatchLeaseTTL, Status: rules,
	}
}

// mlSettingsFlags are the flags of ML Commons settings: their defaults.
func mlSettingsFlags(cfg *config.Config) settings.Flags {
	f := settings.Flags{
		TrustedEndpoints: cfg.TrustedEndpointExprs, AllowPrivateEndpoints: cfg.AllowPrivateEndpoints,
		MaxBatchInferenceTasks: cfg.MaxBatchInferenceTasks, ModelAccessControl: cfg.ModelAccessControl,
		ConnectorAccessControl: cfg.ConnectorAccessControl, StatusFields: cfg.BatchStatusFields,
		StatusRegex: map[string]string{},
	}
	for _, r := range cfg.BatchStatusRules {
		f.StatusRegex[strings.ToLower(r.State)] = r.Expr
	}
	return f
}

// clusterPermissions reads the cluster's role definitions with the service
// account. An account that may not read them leaves authorization to the
// configured role names; a cluster without the security plugin has no roles
// (its callers are anonymous and authorized as the cluster would).
func clusterPermissions(store *indexstore.Store) auth.PermissionSource {
	return func(ctx context.Context) (*auth.Permissions, error) {
		roles, groups, err := store.ClusterPermissions(ctx)
		var se *indexstore.StatusError
		switch {
		case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden):
			return nil, auth.ErrNoAccess
		case errors.Is(err, indexstore.ErrNoSecurityPlugin):
			return &auth.Permissions{}, nil
		case err != nil:
			return nil, err
		}
		return &auth.Permissions{Roles: roles, Groups: groups}, nil
	}
}

// checkAuthentication asks the cluster, with the service account, whether
// it has the security plugin, and says at start-up when the choice of
// --authentication does not fit it.
func checkAuthentication(ctx context.Context, store *indexstore.Store, mode string, log *slog.Logger) {
	secured, err := store.SecurityEnabled(ctx)
	switch {
	case err != nil:
		log.Warn("cannot tell whether the cluster has the security plugin", "err", err)
	case mode == "cluster" && !secured:
		log.Error("the cluster has no security plugin: ML callers cannot be authenticated and get 502; " +
			"start mlsidecar with --authentication=none to serve them without authentication")
	case mode == "none" && secured:
		log.Warn("--authentication=none in front of a cluster with the security plugin: ML callers are not " +
			"authenticated and every ML request runs with the sidecar's rights")
	case mode == "none":
		log.Info("--authentication=none: ML callers are not authenticated, as on the cluster")
	}
}
