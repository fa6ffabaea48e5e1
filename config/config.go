// Package config holds mlsidecar's configuration: one Config struct, its
// defaults, and how it is read from flags, MLSIDECAR_* environment variables
// and an optional YAML file (precedence: flag > env > file > default).
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix is the prefix of every environment variable mlsidecar reads.
const EnvPrefix = "MLSIDECAR_"

// Config is the complete, validated configuration. Run-time code only ever
// sees a Config returned by Load, so every field is usable as is.
type Config struct {
	ListenAddress         string
	InternalListenAddress string

	Upstream                   *url.URL
	UpstreamCAFile             string
	UpstreamCertFile           string
	UpstreamKeyFile            string
	UpstreamServerName         string
	UpstreamInsecureSkipVerify bool
	UpstreamUsername           string
	UpstreamPasswordFile       string
	// UpstreamPassword is read from UpstreamPasswordFile; never log it.
	UpstreamPassword string
	// UpstreamTLS is built from the upstream TLS options; nil for http.
	UpstreamTLS *tls.Config

	UpstreamDialTimeout     time.Duration
	UpstreamResponseTimeout time.Duration
	UpstreamCheckInterval   time.Duration
	// IndexCallTimeout bounds each of the sidecar's own calls to the
	// cluster (its indices, the security configuration).
	IndexCallTimeout time.Duration

	LogLevel        slog.Level
	LogFormat       string
	ShutdownTimeout time.Duration

	// IndexPrefix starts the name of every index the sidecar owns.
	IndexPrefix string
	// MasterKeys are read from MasterKeyFile; empty means the key stored in
	// the config index (created on first start) encrypts credentials.
	MasterKeyFile string
	MasterKeys    []byte
	// AllowStoredMasterKey keeps the master key in the config index of a
	// cluster with the security plugin when MasterKeyFile is empty.
	AllowStoredMasterKey bool
	// ModelAccessControl and ConnectorAccessControl are ML Commons'
	// model_access_control_enabled and connector_access_control_enabled:
	// model groups, models and connectors checked by owner, access mode and
	// backend roles.
	ModelAccessControl     bool
	ConnectorAccessControl bool
	// TrustedEndpoints are the regexes an outbound URL must match as a
	// whole (each anchored here, as Java's String.matches does); by default
	// ML Commons 2.19's list.
	TrustedEndpoints []*regexp.Regexp
	// TrustedEndpointExprs are the same regexes as given, for where the
	// setting is shown.
	TrustedEndpointExprs  []string
	AllowPrivateEndpoints bool
	MaxRequestBodyBytes   int64
	// MaxInflightMLBodyBytes bounds the bytes of all ML request bodies being
	// read at once; MLBodyReadTimeout the time one may take to arrive.
	MaxInflightMLBodyBytes int64
	MLBodyReadTimeout      time.Duration
	// MaxRequestHeaderBytes bounds a request's header block, counted as
	// OpenSearch counts it (see --max-request-header-bytes).
	MaxRequestHeaderBytes int
	NodeID                string
	AuthCacheTTL          time.Duration
	// MLFullAccessRoles and MLReadOnlyRoles authorize ML callers by role
	// name when the service account cannot read the cluster's security
	// configuration.
	MLFullAccessRoles, MLReadOnlyRoles []string
	// Authentication is "cluster" (ML callers authenticated by the cluster's
	// security plugin) or "none" (an explicit choice: every ML caller is
	// anonymous, for clusters without the security plugin).
	Authentication string
	// SecurityConfigRefresh is how long a read of the cluster's role
	// definitions is used.
	SecurityConfigRefresh time.Duration

	// Batch predict.
	BatchPollInterval      time.Duration
	BatchMaxPollFailures   int
	MaxBatchInferenceTasks int
	BatchPollConcurrency   int
	BatchPollRate          float64
	BatchLeaseTTL          time.Duration
	// IngestOpenAIURL is where openAI ingestion sources without a
	// connector are read; IngestS3Endpoint overrides the S3 endpoint (an
	// S3-compatible store, path-style); IngestConcurrency bounds the
	// ingestions one replica runs at once.
	IngestOpenAIURL   string
	IngestS3Endpoint  string
	IngestConcurrency int
	BatchStatusFields []string
	// BatchStatusRules map a provider's job status to a task state, tried
	// in order (case-insensitive regexes).
	BatchStatusRules []StatusRule

	// MLSettings is "cluster" (ML Commons settings stored through PUT
	// _cluster/settings override the flags above) or "locked" (only the
	// flags count); MLSettingsRefresh is how often every replica re-reads
	// the stored ones.
	MLSettings        string
	MLSettingsRefresh time.Duration
}

// StatusRule is one batch status regex and the task state it means.
type StatusRule struct {
	State string
	Regex *regexp.Regexp
	// Expr is the regex as given (Regex adds case-insensitivity).
	Expr string
}

// DefaultTrustedEndpoints is ML Commons 2.19's default value of
// plugins.ml_commons.trusted_connector_endpoints_regex, in its order, with
// each ".*[a-z0-9-]" inside an AWS host narrowed to one host label
// "[a-z0-9-]+": ".*" also matches ".", "/" and "@", so the upstream patterns
// trust "https://bedrock.evil.example/x.amazonaws.com/". Every regional AWS
// host the upstream list allows still matches. The slice is new on every
// call.
func DefaultTrustedEndpoints() []string { return append([]string(nil), defaultTrustedEndpoints...) }

// TrustedRegexp compiles a trusted endpoint regex so that it matches a
// whole URL, as Java's String.matches does.
func TrustedRegexp(expr string) (*regexp.Regexp, error) {
	// The group keeps an alternation in expr from escaping the anchors.
	return regexp.Compile(`^(?:` + expr + `)$`)
}

var defaultTrustedEndpoints = []string{
	`^https://runtime\.sagemaker\.[a-z0-9-]+\.amazonaws\.com/.*$`,
	`^https://api\.sagemaker\.[a-z0-9-]+\.amazonaws\.com/.*$`,
	`^https://api\.openai\.com/.*$`,
	`^https://api\.cohere\.ai/.*$`,
	`^https://api\.deepseek\.com/.*$`,
	`^https://bedrock-runtime\.[a-z0-9-]+\.amazonaws\.com/.*$`,
	`^https://bedrock-agent-runtime\.[a-z0-9-]+\.amazonaws\.com/.*$`,
	`^https://bedrock\.[a-z0-9-]+\.amazonaws\.com/.*$`,
	`^https://textract\.[a-z0-9-]+\.amazonaws\.com$`,
	`^https://comprehend\.[a-z0-9-]+\.amazonaws\.com$`,
	`^https://rekognition(-fips)?\.[a-z0-9-]+\.amazonaws\.com$`,
}

// raw holds the options exactly as given, before parsing and validation.
type raw struct {
	configFile string

	listenAddress, internalListenAddress string

	upstream, upstreamCAFile, upstreamCertFile, upstreamKeyFile string
	upstreamServerName, upstreamUsername, upstreamPasswordFile  string
	upstreamInsecureSkipVerify                                  bool

	upstreamDialTimeout, upstreamResponseTimeout, upstreamCheckInterval time.Duration
	indexCallTimeout                                                    time.Duration

	logLevel, logFormat string
	shutdownTimeout     time.Duration

	indexPrefix, masterKeyFile, nodeID string
	ingestOpenAIURL, ingestS3Endpoint  string
	ingestConcurrency                  int
	allowStoredMasterKey               bool
	modelAccessControl                 bool
	connectorAccessControl             bool
	trustedEndpoints                   stringList
	allowPrivateEndpoints              bool
	maxRequestBodyBytes                int64
	maxInflightMLBodyBytes             int64
	mlBodyReadTimeout                  time.Duration
	maxRequestHeaderBytes              int
	authCacheTTL                       time.Duration
	mlFullAccessRoles, mlReadOnlyRoles stringList
	authentication                     string
	securityConfigRefresh              time.Duration

	batchPollInterval, batchLeaseTTL                                           time.Duration
	batchMaxPollFailures, maxBatchTasks, batchPollConcurrency                  int
	batchPollRate                                                              float64
	batchStatusFields                                                          stringList
	regexCancelling, regexCancelled, regexCompleted, regexExpired, regexFailed string

	mlSettings        string
	mlSettingsRefresh time.Duration
}

// stringList is a repeatable flag; the first value given replaces the
// default list.
type stringList struct {
	values []string
	set    bool
}

func (l *stringList) String() string { return strings.Join(l.values, ",") }

func (l *stringList) Set(v string) error {
	if !l.set {
		l.values, l.set = nil, true
	}
	l.values = append(l.values, v)
	return nil
}

func (r *raw) flagSet(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mlsidecar", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&r.configFile, "config", "", "optional YAML file with options (keys are the flag names)")
	fs.StringVar(&r.listenAddress, "listen-address", ":9201", "address the proxy and ML API listen on")
	fs.StringVar(&r.internalListenAddress, "internal-listen-address", ":9202", "address of /metrics, /-/healthy, /-/ready and /debug/pprof")
	fs.StringVar(&r.upstream, "upstream", "http://127.0.0.1:9200", "URL of the OpenSearch cluster (http or https)")
	fs.StringVar(&r.upstreamCAFile, "upstream-ca-file", "", "PEM file with the CAs that sign the upstream's certificate")
	fs.StringVar(&r.upstreamCertFile, "upstream-cert-file", "", "PEM client certificate for the sidecar's own upstream traffic")
	fs.StringVar(&r.upstreamKeyFile, "upstream-key-file", "", "PEM key of --upstream-cert-file")
	fs.StringVar(&r.upstreamServerName, "upstream-server-name", "", "TLS server name to verify instead of the upstream host")
	fs.BoolVar(&r.upstreamInsecureSkipVerify, "upstream-insecure-skip-verify", false, "do not verify the upstream's certificate (testing only)")
	fs.StringVar(&r.upstreamUsername, "upstream-username", "", "user of the sidecar's own index traffic")
	fs.StringVar(&r.upstreamPasswordFile, "upstream-password-file", "", "file holding the password of --upstream-username")
	fs.DurationVar(&r.upstreamDialTimeout, "upstream-dial-timeout", 5*time.Second, "time to open a connection to the upstream")
	fs.DurationVar(&r.upstreamResponseTimeout, "upstream-response-timeout", 2*time.Minute, "time to wait for the upstream's response headers once the request is sent (0: no limit); exceeded means 504")
	fs.DurationVar(&r.indexCallTimeout, "index-call-timeout", 30*time.Second, "bound of each of the sidecar's own calls to the cluster (its indices, the security configuration), retries included; exceeded means 504")
	fs.DurationVar(&r.upstreamCheckInterval, "upstream-check-interval", 5*time.Second, "how often readiness checks that the upstream answers")
	fs.StringVar(&r.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&r.logFormat, "log-format", "json", "json or text")
	fs.DurationVar(&r.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may drain after SIGTERM")
	fs.StringVar(&r.indexPrefix, "index-prefix", ".mlsidecar-", "prefix of the hidden indices holding connectors, models, model groups, tasks and config")
	fs.StringVar(&r.masterKeyFile, "master-key-file", "", "file of credential encryption keys, one \"<id>:<base64 of 32 bytes>\" per line, newest last; empty: a key kept in the config index")
	r.trustedEndpoints.values = append([]string(nil), defaultTrustedEndpoints...)
	fs.BoolVar(&r.modelAccessControl, "model-access-control", false, "resource access control of model groups and their models (ML Commons' model_access_control_enabled)")
	fs.BoolVar(&r.connectorAccessControl, "connector-access-control", false, "resource access control of connectors (ML Commons' connector_access_control_enabled)")
	fs.BoolVar(&r.allowStoredMasterKey, "allow-stored-master-key", false, "on a cluster with the security plugin, keep the master key in the config index when no --master-key-file is given (readable by every role that reads all indices)")
	fs.Var(&r.trustedEndpoints, "trusted-endpoint-regex", "regex a connector URL, as parsed (no user info or fragment), must match as a whole (repeatable; default: ML Commons' list, AWS hosts narrowed to one region label)")
	fs.BoolVar(&r.allowPrivateEndpoints, "allow-private-endpoints", false, "let connectors reach loopback, private and link-local addresses")
	fs.Int64Var(&r.maxRequestBodyBytes, "max-request-body-bytes", 10<<20, "largest ML API request body; larger ones get 413")
	fs.Int64Var(&r.maxInflightMLBodyBytes, "max-inflight-ml-body-bytes", 64<<20, "bytes of all ML API request bodies being read at once (each counted at its Content-Length, or at --max-request-body-bytes without one); more get 429")
	fs.DurationVar(&r.mlBodyReadTimeout, "ml-body-read-timeout", 30*time.Second, "time an ML API request body may take to arrive")
	fs.IntVar(&r.maxRequestHeaderBytes, "max-request-header-bytes", 8<<10, "largest header block of a request (sum of \"Name: value\" lines, as OpenSearch's http.max_header_size counts); larger ones get 431")
	fs.StringVar(&r.nodeID, "node-id", "", "name of this sidecar where ML Commons names a node (default: the host name)")
	fs.DurationVar(&r.authCacheTTL, "auth-cache-ttl", 5*time.Second, "how long the cluster's verdict on an ML caller's credentials is reused (a revoked password works this long)")
	fs.StringVar(&r.authentication, "authentication", "cluster", "cluster: ML callers are authenticated and authorized by the cluster's security plugin; none: no authentication (a cluster without the security plugin)")
	r.mlFullAccessRoles.values = []string{"ml_full_access", "all_access"}
	fs.Var(&r.mlFullAccessRoles, "ml-full-access-roles", "security roles with ML Commons' full access when the service account cannot read the security configuration (repeatable)")
	r.mlReadOnlyRoles.values = []string{"ml_read_access", "ml_readonly_access"}
	fs.Var(&r.mlReadOnlyRoles, "ml-readonly-roles", "security roles with ML Commons' read-only access when the service account cannot read the security configuration (repeatable)")
	fs.DurationVar(&r.securityConfigRefresh, "security-config-refresh", 30*time.Second, "how long the cluster's role definitions and action groups, read for authorizing ML callers, are used")
	fs.DurationVar(&r.batchPollInterval, "batch-poll-interval", time.Minute, "how often every open batch task is refreshed from its provider")
	fs.IntVar(&r.batchMaxPollFailures, "batch-max-poll-failures", 10, "consecutive failed background refreshes after which a batch task is UNREACHABLE")
	fs.IntVar(&r.maxBatchTasks, "max-batch-inference-tasks", 100, "most open batch prediction tasks; more submissions get 429")
	fs.IntVar(&r.batchPollConcurrency, "batch-poll-concurrency", 16, "refreshes one replica runs at once")
	fs.Float64Var(&r.batchPollRate, "batch-poll-rate-per-connector", 10, "status calls per second per connector, per replica")
	fs.DurationVar(&r.batchLeaseTTL, "batch-lease-ttl", 2*time.Minute, "how long a replica holds a batch task it refreshes; a dead replica's tasks move after this")
	fs.StringVar(&r.ingestOpenAIURL, "openai-files-url", "https://api.openai.com", "scheme and host OpenAI files of _batch_ingestion are read from when no connector_id is given")
	fs.StringVar(&r.ingestS3Endpoint, "s3-endpoint", "", "S3 endpoint of batch ingestion (an S3-compatible store, addressed path-style); empty: AWS")
	fs.IntVar(&r.ingestConcurrency, "ingest-concurrency", 2, "ingestions one replica runs at once")
	r.batchStatusFields.values = []string{"status", "Status", "TransformJobStatus"}
	fs.Var(&r.batchStatusFields, "batch-status-field", "remote_job field holding the provider's job status (repeatable)")
	fs.StringVar(&r.regexCancelling, "batch-status-regex-cancelling", `(stopping|cancelling)`, "status regex meaning CANCELLING (tried first)")
	fs.StringVar(&r.regexCancelled, "batch-status-regex-cancelled", `(stopped|cancelled)`, "status regex meaning CANCELLED")
	fs.StringVar(&r.regexCompleted, "batch-status-regex-completed", `(complete|completed|partiallyCompleted)`, "status regex meaning COMPLETED")
	fs.StringVar(&r.regexExpired, "batch-status-regex-expired", `(expired|timeout)`, "status regex meaning EXPIRED")
	fs.StringVar(&r.regexFailed, "batch-status-regex-failed", `(failed)`, "status regex meaning FAILED (tried last)")
	fs.StringVar(&r.mlSettings, "ml-settings", "cluster", "cluster: plugins.ml_commons.* settings updated through PUT _cluster/settings override the flags of the same settings; "+
		"locked: only the flags count, and such updates are refused")
	fs.DurationVar(&r.mlSettingsRefresh, "ml-settings-refresh", 5*time.Second, "how often each replica re-reads the ML Commons settings stored through PUT _cluster/settings")
	return fs
}

// EnvName is the environment variable of a flag: upstream-ca-file ->
// MLSIDECAR_UPSTREAM_CA_FILE.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Load reads the configuration from args (without the program name), the
// environment (through getenv) and the YAML file named by --config or
// MLSIDECAR_CONFIG, then validates it. Every problem is reported at once,
// each naming its option. flag.ErrHelp is returned for -h/--help after the
// usage has been written to usage.
func Load(args []string, getenv func(string) string, usage io.Writer) (*Config, error) {
	var r raw
	fs := r.flagSet(usage)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })

	var errs []error
	set := func(name, value, source string) {
		if err := fs.Set(name, value); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid value %q from %s: %w", name, value, source, unwrapFlagErr(err)))
		}
	}

	// Environment next: it beats the file, so it is applied first and its
	// keys are then skipped when the file is applied.
	fromEnv := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		if explicit[f.Name] {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			fromEnv[f.Name] = true
			set(f.Name, v, "environment "+EnvName(f.Name))
		}
	})

	if r.configFile != "" {
		values, err := readFile(r.configFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %w", err))
		}
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch {
			case k == "config":
				errs = append(errs, fmt.Errorf("config: the file may not name another file"))
			case fs.Lookup(k) == nil:
				errs = append(errs, fmt.Errorf("%s: unknown option in %s", k, r.configFile))
			case explicit[k] || fromEnv[k]:
			default:
				for _, v := range values[k] {
					set(k, v, "file "+r.configFile)
				}
			}
		}
	}
	// Options that failed to parse keep their defaults, so validating the
	// rest still reports every other problem in the same run.
	c, err := r.complete()
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// readFile decodes a YAML mapping of option names to values (lists for
// repeatable options).
func readFile(path string) (map[string][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make(map[string][]string, len(doc))
	for k, n := range doc {
		switch n.Kind {
		case yaml.ScalarNode:
			out[k] = []string{n.Value}
		case yaml.SequenceNode:
			for _, item := range n.Content {
				if item.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s: option %s must be a list of values", path, k)
				}
				out[k] = append(out[k], item.Value)
			}
		default:
			return nil, fmt.Errorf("%s: option %s must be a value or a list of values", path, k)
		}
	}
	return out, nil
}

var indexPrefixRe = regexp.MustCompile(`^[a-z0-9._-]{1,40}$`)

// unwrapFlagErr drops the flag package's own prefix so messages read once.
func unwrapFlagErr(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// complete validates the raw options and turns them into a Config: URLs
// parsed, secrets and certificates read. All problems are returned together.
func (r *raw) complete() (*Config, error) {
	c := &Config{
		ListenAddress:              r.listenAddress,
		InternalListenAddress:      r.internalListenAddress,
		UpstreamCAFile:             r.upstreamCAFile,
		UpstreamCertFile:           r.upstreamCertFile,
		UpstreamKeyFile:            r.upstreamKeyFile,
		UpstreamServerName:         r.upstreamServerName,
		UpstreamInsecureSkipVerify: r.upstreamInsecureSkipVerify,
		UpstreamUsername:           r.upstreamUsername,
		UpstreamPasswordFile:       r.upstreamPasswordFile,
		UpstreamDialTimeout:        r.upstreamDialTimeout,
		UpstreamResponseTimeout:    r.upstreamResponseTimeout,
		UpstreamCheckInterval:      r.upstreamCheckInterval,
		IndexCallTimeout:           r.indexCallTimeout,
		LogFormat:                  r.logFormat,
		ShutdownTimeout:            r.shutdownTimeout,
		IndexPrefix:                r.indexPrefix,
		MasterKeyFile:              r.masterKeyFile,
		AllowStoredMasterKey:       r.allowStoredMasterKey,
		ModelAccessControl:         r.modelAccessControl,
		ConnectorAccessControl:     r.connectorAccessControl,
		AllowPrivateEndpoints:      r.allowPrivateEndpoints,
		MaxRequestBodyBytes:        r.maxRequestBodyBytes,
		MaxInflightMLBodyBytes:     r.maxInflightMLBodyBytes,
		MLBodyReadTimeout:          r.mlBodyReadTimeout,
		MaxRequestHeaderBytes:      r.maxRequestHeaderBytes,
		NodeID:                     r.nodeID,
		AuthCacheTTL:               r.authCacheTTL,
		MLFullAccessRoles:          r.mlFullAccessRoles.values,
		Authentication:             r.authentication,
		MLReadOnlyRoles:            r.mlReadOnlyRoles.values,
		SecurityConfigRefresh:      r.securityConfigRefresh,
		BatchPollInterval:          r.batchPollInterval,
		BatchMaxPollFailures:       r.batchMaxPollFailures,
		MaxBatchInferenceTasks:     r.maxBatchTasks,
		BatchPollConcurrency:       r.batchPollConcurrency,
		BatchPollRate:              r.batchPollRate,
		BatchLeaseTTL:              r.batchLeaseTTL,
		IngestOpenAIURL:            r.ingestOpenAIURL,
		IngestS3Endpoint:           r.ingestS3Endpoint,
		IngestConcurrency:          r.ingestConcurrency,
		BatchStatusFields:          r.batchStatusFields.values,
		TrustedEndpointExprs:       r.trustedEndpoints.values,
		MLSettings:                 r.mlSettings,
		MLSettingsRefresh:          r.mlSettingsRefresh,
	}
	var errs []error
	fail := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}

	for key, addr := range map[string]string{"listen-address": r.listenAddress, "internal-listen-address": r.internalListenAddress} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			fail(key, "must be host:port, got %q", addr)
		}
	}
	if r.listenAddress == r.internalListenAddress && !strings.HasSuffix(r.listenAddress, ":0") {
		fail("internal-listen-address", "must differ from listen-address")
	}

	for key, v := range map[string]string{"openai-files-url": r.ingestOpenAIURL, "s3-endpoint": r.ingestS3Endpoint} {
		if v == "" && key == "s3-endpoint" {
			continue
		}
		if pu, err := url.Parse(v); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			fail(key, "must be an http or https URL, got %q", v)
		}
	}
	if r.ingestConcurrency < 1 {
		fail("ingest-concurrency", "must be at least 1, got %d", r.ingestConcurrency)
	}

	u, err := url.Parse(r.upstream)
	switch {
	case err != nil:
		fail("upstream", "not a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		fail("upstream", "scheme must be http or https, got %q", u.Scheme)
	case u.Host == "":
		fail("upstream", "must name a host, got %q", r.upstream)
	case u.User != nil:
		fail("upstream", "must not carry credentials; use upstream-username and upstream-password-file")
	case u.RawQuery != "" || u.Fragment != "":
		fail("upstream", "must not have a query or fragment")
	default:
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawPath = strings.TrimSuffix(u.RawPath, "/")
		c.Upstream = u
	}

	if err := c.LogLevel.UnmarshalText([]byte(r.logLevel)); err != nil {
		fail("log-level", "must be debug, info, warn or error, got %q", r.logLevel)
	}
	if r.logFormat != "json" && r.logFormat != "text" {
		fail("log-format", "must be json or text, got %q", r.logFormat)
	}
	for key, d := range map[string]time.Duration{
		"shutdown-timeout":        r.shutdownTimeout,
		"upstream-dial-timeout":   r.upstreamDialTimeout,
		"upstream-check-interval": r.upstreamCheckInterval,
		"index-call-timeout":      r.indexCallTimeout,
	} {
		if d <= 0 {
			fail(key, "must be positive, got %s", d)
		}
	}
	if r.upstreamResponseTimeout < 0 {
		fail("upstream-response-timeout", "must not be negative, got %s", r.upstreamResponseTimeout)
	}

	if (r.upstreamUsername == "") != (r.upstreamPasswordFile == "") {
		fail("upstream-password-file", "upstream-username and upstream-password-file go together")
	}
	if r.upstreamPasswordFile != "" {
		b, err := os.ReadFile(r.upstreamPasswordFile)
		switch {
		case err != nil:
			fail("upstream-password-file", "cannot read: %v", pathError(err))
		case len(strings.TrimRight(string(b), "\r\n")) == 0:
			fail("upstream-password-file", "file is empty")
		default:
			c.UpstreamPassword = strings.TrimRight(string(b), "\r\n")
		}
	}

	if !indexPrefixRe.MatchString(r.indexPrefix) {
		fail("index-prefix", "must be lower-case letters, digits, '.', '-' or '_', got %q", r.indexPrefix)
	}
	if r.masterKeyFile != "" {
		b, err := os.ReadFile(r.masterKeyFile)
		if err != nil {
			fail("master-key-file", "cannot read: %v", pathError(err))
		}
		c.MasterKeys = b
	}
	for _, expr := range r.trustedEndpoints.values {
		re, err := TrustedRegexp(expr)
		if err != nil {
			fail("trusted-endpoint-regex", "%q does not compile: %v", expr, err)
			continue
		}
		c.TrustedEndpoints = append(c.TrustedEndpoints, re)
	}
	if r.maxRequestHeaderBytes < 1024 {
		fail("max-request-header-bytes", "must be at least 1024, got %d", r.maxRequestHeaderBytes)
	}
	if r.maxInflightMLBodyBytes < r.maxRequestBodyBytes {
		fail("max-inflight-ml-body-bytes", "must be at least max-request-body-bytes (%d), got %d", r.maxRequestBodyBytes, r.maxInflightMLBodyBytes)
	}
	if r.mlBodyReadTimeout <= 0 {
		fail("ml-body-read-timeout", "must be positive, got %s", r.mlBodyReadTimeout)
	}
	if r.maxRequestBodyBytes < 1024 {
		fail("max-request-body-bytes", "must be at least 1024, got %d", r.maxRequestBodyBytes)
	}
	for key, d := range map[string]time.Duration{"batch-poll-interval": r.batchPollInterval, "batch-lease-ttl": r.batchLeaseTTL} {
		if d < 100*time.Millisecond {
			fail(key, "must be at least 100ms, got %s", d)
		}
	}
	for key, n := range map[string]int{"batch-max-poll-failures": r.batchMaxPollFailures, "batch-poll-concurrency": r.batchPollConcurrency} {
		if n < 1 {
			fail(key, "must be at least 1, got %d", n)
		}
	}
	if r.maxBatchTasks < 0 {
		fail("max-batch-inference-tasks", "must not be negative, got %d", r.maxBatchTasks)
	}
	if r.batchPollRate <= 0 {
		fail("batch-poll-rate-per-connector", "must be positive, got %v", r.batchPollRate)
	}
	// In ML Commons' order: the first rule that matches decides.
	for _, rule := range []struct{ state, expr string }{
		{"cancelling", r.regexCancelling}, {"cancelled", r.regexCancelled}, {"completed", r.regexCompleted},
		{"expired", r.regexExpired}, {"failed", r.regexFailed},
	} {
		re, err := regexp.Compile("(?i)" + rule.expr)
		if err != nil {
			fail("batch-status-regex-"+rule.state, "%q does not compile: %v", rule.expr, err)
			continue
		}
		c.BatchStatusRules = append(c.BatchStatusRules, StatusRule{State: strings.ToUpper(rule.state), Regex: re, Expr: rule.expr})
	}
	if r.mlSettings != "cluster" && r.mlSettings != "locked" {
		fail("ml-settings", "must be cluster or locked, got %q", r.mlSettings)
	}
	if r.mlSettingsRefresh < 100*time.Millisecond {
		fail("ml-settings-refresh", "must be at least 100ms, got %s", r.mlSettingsRefresh)
	}
	if r.authentication != "cluster" && r.authentication != "none" {
		fail("authentication", "must be cluster or none, got %q", r.authentication)
	}
	if r.securityConfigRefresh <= 0 {
		fail("security-config-refresh", "must be positive, got %s", r.securityConfigRefresh)
	}
	if r.authCacheTTL < 0 {
		fail("auth-cache-ttl", "must not be negative, got %s", r.authCacheTTL)
	}
	if c.NodeID == "" {
		if h, err := os.Hostname(); err == nil {
			c.NodeID = h
		} else {
			c.NodeID = "mlsidecar"
		}
	}

	tlsConf, tlsErrs := r.tlsConfig(c.Upstream)
	errs = append(errs, tlsErrs...)
	c.UpstreamTLS = tlsConf

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// tlsConfig builds the client TLS configuration for an https upstream.
func (r *raw) tlsConfig(u *url.URL) (*tls.Config, []error) {
	var errs []error
	fail := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	tlsOptionSet := r.upstreamCAFile != "" || r.upstreamCertFile != "" || r.upstreamKeyFile != "" ||
		r.upstreamServerName != "" || r.upstreamInsecureSkipVerify
	if u == nil || u.Scheme != "https" {
		if tlsOptionSet && u != nil {
			fail("upstream", "TLS options are set but the upstream is not https")
		}
		return nil, errs
	}
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         r.upstreamServerName,
		InsecureSkipVerify: r.upstreamInsecureSkipVerify, //nolint:gosec // opt-in, documented as testing only
	}
	if r.upstreamCAFile != "" {
		pem, err := os.ReadFile(r.upstreamCAFile)
		if err != nil {
			fail("upstream-ca-file", "cannot read: %v", pathError(err))
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				fail("upstream-ca-file", "no PEM certificate found")
			}
			conf.RootCAs = pool
		}
	}
	if (r.upstreamCertFile == "") != (r.upstreamKeyFile == "") {
		fail("upstream-key-file", "upstream-cert-file and upstream-key-file go together")
	} else if r.upstreamCertFile != "" {
		cert, err := tls.LoadX509KeyPair(r.upstreamCertFile, r.upstreamKeyFile)
		if err != nil {
			fail("upstream-cert-file", "cannot load key pair: %v", pathError(err))
		} else {
			conf.Certificates = []tls.Certificate{cert}
		}
	}
	return conf, errs
}

// pathError keeps only the cause of a file error; the option already names
// the file.
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
