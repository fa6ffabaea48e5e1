// Package s3server runs a real, independent S3-compatible server for the e2e
// tests: moto in server mode (PyPI; the version pinned in requirements.txt),
// installed by install.sh into a virtualenv beside this file
// (e2e/s3server/.venv). Start runs moto_server on 127.0.0.1 at a free port,
// waits until it answers and hands out its endpoint; Close stops it.
//
// moto checks no signature by default. Start therefore has moto's own IAM
// issue an access key allowed every S3 action, then turns moto's request
// authentication on (its /moto-api/reset-auth), so from then on every request
// must carry a valid SigV4 signature of that key, recomputed by botocore's
// S3SigV4Auth: a client that signs wrongly gets 403 SignatureDoesNotMatch, as
// from AWS.
package s3server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// installHint is what a missing server binary asks for.
const installHint = "run e2e/s3server/install.sh"

// Options configure Start. Zero values take the defaults shown.
type Options struct {
	// Binary is the moto_server to run (.venv/bin/moto_server beside this
	// package).
	Binary string
	// Region the clients sign for ("us-east-1"); moto serves any.
	Region string
	// StartTimeout bounds the wait until the server answers (1m).
	StartTimeout time.Duration
}

// Server is one running moto_server.
type Server struct {
	endpoint string
	region   string
	creds    aws.Credentials

	hc     *http.Client // for moto's own API and IAM, while starting
	cmd    *exec.Cmd
	out    *tail
	exited chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's answer, once exited is closed

	closeOnce sync.Once
	closeErr  error
}

// StartForTest starts a server for the test and stops it when the test ends.
// Any failure fails the test (never skips it): the suite needs the server.
func StartForTest(t testing.TB) *Server {
	t.Helper()
	s, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stopping the S3 server: %v", err)
		}
	})
	return s
}

// Start runs moto_server and returns once it answers and signatures are
// checked.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = time.Minute
	}
	if opts.Binary == "" {
		opts.Binary = defaultBinary()
	}
	if _, err := os.Stat(opts.Binary); err != nil {
		return nil, fmt.Errorf("s3server: no moto_server at %s (%w): %s", opts.Binary, err, installHint)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	// The free port is found by listening and closing; another process may
	// take it before moto binds it, so a server that exits early is tried
	// again on a new port.
	var lastErr error
	for range 3 {
		s, err := launch(opts.Binary, opts.Region)
		if err != nil {
			return nil, err
		}
		err = s.waitReady(ctx)
		if err == nil {
			err = s.provision(ctx)
		}
		if err == nil {
			return s, nil
		}
		lastErr = fmt.Errorf("%w\nmoto_server output:\n%s", err, s.out)
		_ = s.Close()
		if !errors.Is(err, errExited) {
			break
		}
	}
	return nil, fmt.Errorf("s3server: starting %s: %w", opts.Binary, lastErr)
}

// defaultBinary is .venv/bin/moto_server beside this source file, or, when
// the build does not know its source paths (-trimpath), beside the module's
// e2e/s3server found from the working directory up.
func defaultBinary() string {
	rel := filepath.Join(".venv", "bin", "moto_server")
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		return filepath.Join(filepath.Dir(file), rel)
	}
	dir, err := os.Getwd()
	if err != nil {
		return rel
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "e2e", "s3server", rel)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return rel
		}
		dir = parent
	}
}

var errExited = errors.New("moto_server exited")

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch starts the process in its own process group; it is not ready yet.
func launch(binary, region string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("s3server: finding a free port: %w", err)
	}
	s := &Server{
		endpoint: "http://127.0.0.1:" + strconv.Itoa(port),
		region:   region,
		hc:       &http.Client{Timeout: 5 * time.Second},
		out:      &tail{max: 16 << 10},
		exited:   make(chan struct{}),
	}
	s.cmd = exec.Command(binary, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = sysProcAttr()

	started := make(chan error, 1)
	go func() {
		// The parent-death signal (Linux) follows the thread that started
		// the child, so that thread stays locked to this goroutine for the
		// child's lifetime; it ends with the goroutine, after the child.
		runtime.LockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("s3server: starting %s: %w", binary, err)
	}
	return s, nil
}

// waitReady polls moto's own API until it answers, the process exits or
// ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint+"/moto-api/config", nil)
		if err != nil {
			return err
		}
		if resp, err := s.hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%w before answering (%v); should its virtualenv be broken, %s", errExited, s.err, installHint)
		case <-ctx.Done():
			return fmt.Errorf("moto_server did not answer at %s: %w", s.endpoint, ctx.Err())
		case <-tick.C:
		}
	}
}

// provision has moto's IAM issue the access key the clients use, then turns
// signature checks on. Until then moto authenticates nothing, so the IAM
// calls may be signed with any key.
func (s *Server) provision(ctx context.Context) error {
	const user = "mlsidecar-e2e"
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`
	if _, err := s.iam(ctx, url.Values{"Action": {"CreateUser"}, "UserName": {user}}); err != nil {
		return err
	}
	if _, err := s.iam(ctx, url.Values{"Action": {"PutUserPolicy"}, "UserName": {user}, "PolicyName": {"s3-all"}, "PolicyDocument": {policy}}); err != nil {
		return err
	}
	body, err := s.iam(ctx, url.Values{"Action": {"CreateAccessKey"}, "UserName": {user}})
	if err != nil {
		return err
	}
	var key struct {
		ID     string `xml:"CreateAccessKeyResult>AccessKey>AccessKeyId"`
		Secret string `xml:"CreateAccessKeyResult>AccessKey>SecretAccessKey"`
	}
	if err := xml.Unmarshal(body, &key); err != nil || key.ID == "" || key.Secret == "" {
		return fmt.Errorf("moto IAM CreateAccessKey answered %q (%v)", body, err)
	}
	s.creds = aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret, Source: "s3server"}

	// From now on every request is authenticated and authorized.
	if _, err := s.post(ctx, s.endpoint+"/moto-api/reset-auth", "text/plain", []byte("0"), nil); err != nil {
		return fmt.Errorf("turning moto's authentication on: %w", err)
	}
	return nil
}

// iam calls moto's IAM (query protocol). moto picks the service from the
// credential scope of the Authorization header, so the call is signed.
func (s *Server) iam(ctx context.Context, form url.Values) ([]byte, error) {
	form.Set("Version", "2010-05-08")
	body := []byte(form.Encode())
	sign := func(r *http.Request) error {
		sum := sha256.Sum256(body)
		return v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: "bootstrap", SecretAccessKey: "bootstrap"},
			r, hex.EncodeToString(sum[:]), "iam", "us-east-1", time.Now())
	}
	b, err := s.post(ctx, s.endpoint+"/", "application/x-www-form-urlencoded", body, sign)
	if err != nil {
		return nil, fmt.Errorf("moto IAM %s: %w", form.Get("Action"), err)
	}
	return b, nil
}

func (s *Server) post(ctx context.Context, u, contentType string, body []byte, sign func(*http.Request) error) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if sign != nil {
		if err := sign(req); err != nil {
			return nil, err
		}
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return b, nil
}

// Endpoint is the server's base URL, http://127.0.0.1:PORT (for
// BaseEndpoint, with path-style addressing).
func (s *Server) Endpoint() string { return s.endpoint }

// Region is the region clients sign for.
func (s *Server) Region() string { return s.region }

// Credentials are the access key the server accepts, allowed every S3
// action.
func (s *Server) Credentials() aws.Credentials { return s.creds }

// Client is an S3 client of the server signing with Credentials.
func (s *Server) Client(optFns ...func(*s3.Options)) *s3.Client {
	return NewClient(s.endpoint, s.region, s.creds, optFns...)
}

// NewClient is an aws-sdk-go-v2 S3 client of an S3-compatible endpoint:
// static credentials, the endpoint as BaseEndpoint, path-style addressing
// (http://host/bucket/key, as local servers need).
func NewClient(endpoint, region string, creds aws.Credentials, optFns ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken),
	}, optFns...)
}

// Close stops the server: SIGTERM to its process group, SIGKILL if it has
// not exited after 10s. Safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		pid := s.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-s.exited
		}
		// Exiting on the signal we sent is the normal end.
		var ee *exec.ExitError
		if s.err != nil && !errors.As(s.err, &ee) {
			s.closeErr = s.err
		}
	})
	return s.closeErr
}

// tail keeps the last max bytes written to it: moto logs every request.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
