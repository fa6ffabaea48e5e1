// Package settings gives the ML Commons cluster settings
// (plugins.ml_commons.*) a home in front of a cluster that does not know
// them. A PUT _cluster/settings body is taken apart (SplitBody): its ML
// Commons settings are checked as ML Commons would check them (Check), kept
// in one document of the config index with optimistic concurrency (Store),
// and merged back into the cluster's answers (Changes.Merge, Merge). Every
// replica re-reads the document (Watch) and puts what it says in force: the
// flags are the defaults, stored settings override them (transient over
// persistent, as in OpenSearch) unless the operator locked the settings to
// the flags. Consumers get the settings in force as an *Effective, through
// Options.Apply and Service.Effective.
package settings

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// The modes of --ml-settings.
const (
	// ModeCluster: settings stored through the cluster settings API
	// override the flags.
	ModeCluster = "cluster"
	// ModeLocked: only the flags count; updates of ML Commons settings are
	// refused.
	ModeLocked = "locked"
)

// Flags are the operator's values of the settings mlsidecar has flags for:
// the defaults a stored setting overrides.
type Flags struct {
	// TrustedEndpoints are the regexes as given (not anchored).
	TrustedEndpoints       []string
	AllowPrivateEndpoints  bool
	MaxBatchInferenceTasks int
	ModelAccessControl     bool
	ConnectorAccessControl bool
	StatusFields           []string
	// StatusRegex are the status regexes (not compiled) by lower-case
	// state: cancelling, cancelled, completed, expired, failed.
	StatusRegex map[string]string
}

// Effective are the settings in force that mean something here.
type Effective struct {
	// TrustedEndpoints are anchored to match a whole URL.
	TrustedEndpoints       []*regexp.Regexp
	AllowPrivateEndpoints  bool
	ModelAccessControl     bool
	ConnectorAccessControl bool
	RemoteInference        bool
	OfflineBatchInference  bool
	MaxBatchInferenceTasks int
	// StatusFields and StatusRules are the batch polling rules; the rules
	// in ML Commons' order (the first match decides).
	StatusFields []string
	StatusRules  []StatusRule
	// For batch ingestion.
	OfflineBatchIngestion  bool
	MaxBatchIngestionTasks int
	BatchIngestionBulkSize int
	// ControllerEnabled is controller_enabled, for the controller APIs.
	ControllerEnabled bool
}

// StatusRule is one status regex and the task state it means.
type StatusRule struct {
	State string
	Regex *regexp.Regexp
}

// The keys of the settings Effective holds.
const (
	keyTrusted        = Prefix + "trusted_connector_endpoints_regex"
	keyPrivate        = Prefix + "connector.private_ip_enabled"
	keyModelACL       = Prefix + "model_access_control_enabled"
	keyConnectorACL   = Prefix + "connector_access_control_enabled"
	keyRemote         = Prefix + "remote_inference.enabled"
	keyBatch          = Prefix + "offline_batch_inference_enabled"
	keyBatchTasks     = Prefix + "max_batch_inference_tasks"
	keyStatusField    = Prefix + "remote_job.status_field"
	keyStatusRegex    = Prefix + "remote_job.status_regex."
	keyIngestion      = Prefix + "offline_batch_ingestion_enabled"
	keyIngestionTasks = Prefix + "max_batch_ingestion_tasks"
	keyBulkSize       = Prefix + "batch_ingestion_bulk_size"
	keyController     = Prefix + "controller_enabled"
)

// statusStates are the status_regex settings in ML Commons' order, with
// the task state each means.
var statusStates = []struct{ name, state string }{
	{"cancelling", indexstore.TaskCancelling}, {"cancelled", indexstore.TaskCancelled},
	{"completed", indexstore.TaskCompleted}, {"expired", indexstore.TaskExpired}, {"failed", indexstore.TaskFailed},
}

// Options configure a Service.
type Options struct {
	// Repo holds the settings document (indexstore.Store.MLSettings).
	Repo indexstore.Repo[indexstore.MLSettings]
	// Mode is ModeCluster or ModeLocked.
	Mode  string
	Flags Flags
	// Apply is called with the settings in force each time a read or a
	// write of the document may have changed them, one call at a time.
	Apply  func(*Effective)
	Logger *slog.Logger
	Now    func() time.Time
}

// Service keeps the ML Commons settings of one replica. It is safe for
// concurrent use.
type Service struct {
	repo     indexstore.Repo[indexstore.MLSettings]
	mode     string
	defaults map[string]json.RawMessage // by full key: flags, else table defaults
	apply    func(*Effective)
	log      *slog.Logger
	now      func() time.Time

	// mu orders the installs of documents read and written, so an older
	// read never replaces a newer write.
	mu  sync.Mutex
	cur atomic.Pointer[state]
}

// state is what is in force: the stored document (nil: none) at version.
type state struct {
	doc     *indexstore.MLSettings
	version indexstore.Version
	loaded  bool // the document has been read at least once
	eff     *Effective
}

// New returns a Service with the flags in force until the stored settings
// are read (Refresh).
func New(o Options) (*Service, error) {
	if o.Mode != ModeCluster && o.Mode != ModeLocked {
		return nil, fmt.Errorf("settings: mode must be %s or %s, got %q", ModeCluster, ModeLocked, o.Mode)
	}
	s := &Service{repo: o.Repo, mode: o.Mode, apply: o.Apply, log: o.Logger, now: o.Now,
		defaults: make(map[string]json.RawMessage, len(table))}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	f := o.Flags
	flagged := map[string]any{
		keyTrusted: nonNil(f.TrustedEndpoints), keyPrivate: fmt.Sprint(f.AllowPrivateEndpoints),
		keyModelACL: fmt.Sprint(f.ModelAccessControl), keyConnectorACL: fmt.Sprint(f.ConnectorAccessControl),
		keyBatchTasks: fmt.Sprint(f.MaxBatchInferenceTasks), keyStatusField: nonNil(f.StatusFields),
	}
	for _, st := range statusStates {
		flagged[keyStatusRegex+st.name] = f.StatusRegex[st.name]
	}
	var errs []error
	for key, st := range byKey {
		v, ok := flagged[key]
		if !ok {
			v = st.def
		}
		s.defaults[key] = encodeTexts(v)
		if !ok {
			continue
		}
		// Flag values are checked here only as mlsidecar will use them, not
		// against ML Commons' ranges: an operator may go beyond those.
		texts, _ := v.([]string)
		if text, isText := v.(string); isText {
			texts = []string{text}
		}
		for _, text := range texts {
			if err := st.check(text); err != nil {
				errs = append(errs, fmt.Errorf("--%s: %s", st.flag, mlerr.Reason(err)))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	loaded := o.Mode == ModeLocked // the document never counts then
	s.cur.Store(&state{loaded: loaded, eff: s.effective(nil)})
	return s, nil
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// Mode is the mode the Service runs in.
func (s *Service) Mode() string { return s.mode }

// Effective are the settings in force.
func (s *Service) Effective() *Effective { return s.cur.Load().eff }

// Loaded reports whether the stored settings have been read (always true
// in locked mode).
func (s *Service) Loaded() bool { return s.cur.Load().loaded }

// Refresh reads the stored settings and puts them in force if they changed.
func (s *Service) Refresh(ctx context.Context) error {
	if s.mode == ModeLocked {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, v, err := s.repo.Get(ctx, indexstore.MLSettingsID)
	switch {
	case errors.Is(err, indexstore.ErrNotFound):
		doc = nil // never stored, or the config index is not there yet
	case err != nil:
		return fmt.Errorf("reading the ML Commons settings: %w", err)
	}
	s.install(doc, v)
	return nil
}

// Watch re-reads the stored settings every interval until ctx is done, so
// that an update made through any replica is in force here within one
// interval. A failed read keeps the settings in force; each read is bounded
// by the store's call timeout.
func (s *Service) Watch(ctx context.Context, every time.Duration) {
	if s.mode == ModeLocked {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	failing := false
	for {
		err := s.Refresh(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			s.log.Warn("cannot read the ML Commons settings; the ones in force stay", "err", err)
			failing = true
		case err == nil && failing:
			s.log.Info("reading the ML Commons settings again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// install puts doc, read or written at v (nil: there is none), in force,
// unless a newer version is in force already; s.mu is held. Reads happen
// under s.mu too, so a document that is gone was deleted.
func (s *Service) install(doc *indexstore.MLSettings, v indexstore.Version) {
	cur := s.cur.Load()
	switch {
	case doc == nil && cur.doc == nil && cur.loaded:
		return
	case doc != nil && cur.doc != nil && !newer(v, cur.version):
		return
	}
	next := &state{doc: doc, version: v, loaded: true, eff: s.effective(doc)}
	s.cur.Store(next)
	if cur.loaded || doc != nil {
		s.log.Info("ML Commons settings in force", "stored_keys", storedKeys(doc), "seq_no", v.SeqNo)
	}
	if s.apply != nil {
		s.apply(next.eff)
	}
}

func newer(a, b indexstore.Version) bool {
	return a.PrimaryTerm > b.PrimaryTerm || a.PrimaryTerm == b.PrimaryTerm && a.SeqNo > b.SeqNo
}

// storedKeys names the stored settings (for logs: keys, never values).
func storedKeys(doc *indexstore.MLSettings) []string {
	if doc == nil {
		return nil
	}
	keys := slices.Collect(maps.Keys(doc.Persistent))
	for k := range doc.Transient {
		keys = append(keys, k+" (transient)")
	}
	sort.Strings(keys)
	return keys
}

// value is the raw value of key in force with doc stored.
func (s *Service) value(doc *indexstore.MLSettings, key string) json.RawMessage {
	if doc != nil && s.mode == ModeCluster {
		if v, ok := doc.Transient[key]; ok {
			return v
		}
		if v, ok := doc.Persistent[key]; ok {
			return v
		}
	}
	return s.defaults[key]
}

// effective are the settings in force with doc stored. A stored value that
// cannot be used (checked when it was stored, so only a document changed
// by hand) leaves its setting at the default, and says so.
func (s *Service) effective(doc *indexstore.MLSettings) *Effective {
	var bad []string
	read := func(key string, parse func(json.RawMessage) error) {
		if err := parse(s.value(doc, key)); err != nil {
			bad = append(bad, key)
			_ = parse(s.defaults[key])
		}
	}
	boolean := func(key string, out *bool) {
		read(key, func(raw json.RawMessage) (err error) { *out, err = boolOf(raw); return err })
	}
	integer := func(key string, out *int) {
		read(key, func(raw json.RawMessage) (err error) { *out, err = intOf(raw); return err })
	}
	var e Effective
	read(keyTrusted, func(raw json.RawMessage) error {
		exprs, err := byKey[keyTrusted].listOf(raw)
		e.TrustedEndpoints = e.TrustedEndpoints[:0]
		for _, expr := range exprs {
			re, cerr := trustedRegexp(expr)
			if cerr != nil {
				return cerr
			}
			e.TrustedEndpoints = append(e.TrustedEndpoints, re)
		}
		return err
	})
	boolean(keyPrivate, &e.AllowPrivateEndpoints)
	boolean(keyModelACL, &e.ModelAccessControl)
	boolean(keyConnectorACL, &e.ConnectorAccessControl)
	boolean(keyRemote, &e.RemoteInference)
	boolean(keyBatch, &e.OfflineBatchInference)
	integer(keyBatchTasks, &e.MaxBatchInferenceTasks)
	read(keyStatusField, func(raw json.RawMessage) (err error) {
		e.StatusFields, err = byKey[keyStatusField].listOf(raw)
		return err
	})
	for _, st := range statusStates {
		read(keyStatusRegex+st.name, func(raw json.RawMessage) error {
			text, err := textOf(raw)
			if err != nil {
				return err
			}
			re, err := statusRegexp(text)
			if err != nil {
				return err
			}
			e.StatusRules = append(e.StatusRules, StatusRule{State: st.state, Regex: re})
			return nil
		})
	}
	boolean(keyIngestion, &e.OfflineBatchIngestion)
	integer(keyIngestionTasks, &e.MaxBatchIngestionTasks)
	integer(keyBulkSize, &e.BatchIngestionBulkSize)
	boolean(keyController, &e.ControllerEnabled)
	if len(bad) > 0 {
		s.log.Warn("stored ML Commons settings that cannot be used are left at their defaults", "keys", bad)
	}
	return &e
}

// errLocked refuses an update of key in locked mode.
func errLocked(key string) error {
	return mlerr.IllegalArgument("mlsidecar runs with --ml-settings=locked: the operator fixed the ML Commons settings "+
		"with its flags, so [%s] cannot be changed through the cluster settings API", key)
}

// Check checks the ML Commons settings of an update as the cluster checks
// its own (transient ones first, each scope in key order, with OpenSearch's
// messages) and returns the changes to store. In locked mode any ML Commons
// setting is refused.
func (s *Service) Check(sp *Split) (*Changes, error) {
	given := map[string]map[string]json.RawMessage{Persistent: {}, Transient: {}}
	for _, e := range sp.ML {
		given[e.Scope][e.Key] = e.Value // the last one given counts, as in OpenSearch
	}
	ch := &Changes{scopes: map[string]*scopeChanges{}}
	for _, scope := range []string{Transient, Persistent} {
		sc := &scopeChanges{set: map[string]json.RawMessage{}}
		ch.scopes[scope] = sc
		for _, key := range slices.Sorted(maps.Keys(given[scope])) {
			if s.mode == ModeLocked {
				return nil, errLocked(key)
			}
			if err := sc.add(scope, key, given[scope][key]); err != nil {
				return nil, err
			}
		}
	}
	if s.mode == ModeCluster {
		for _, w := range sp.Wildcards {
			ch.scopes[w.Scope].resets = append(ch.scopes[w.Scope].resets, w.Key)
		}
	}
	return ch, nil
}

// Changes are the checked ML Commons setting changes of one update, values
// as OpenSearch keeps them.
type Changes struct {
	scopes map[string]*scopeChanges // by Persistent and Transient
}

// Empty reports whether the changes change nothing here (a wildcard reset
// of other settings in locked mode).
func (ch *Changes) Empty() bool {
	for _, sc := range ch.scopes {
		if len(sc.resets) > 0 || len(sc.set) > 0 {
			return false
		}
	}
	return true
}

// scopeChanges are one scope's changes: its resets (keys, and patterns
// ending in "*") apply first, then its values, as in OpenSearch.
type scopeChanges struct {
	resets []string
	set    map[string]json.RawMessage
}

func (sc *scopeChanges) add(scope, key string, raw json.RawMessage) error {
	if isNull(raw) && strings.HasSuffix(key, "*") {
		sc.resets = append(sc.resets, key)
		return nil
	}
	st, ok := byKey[key]
	switch {
	case !ok:
		return mlerr.IllegalArgument("%s setting [%s], not recognized", scope, key)
	case st.use == static:
		return mlerr.IllegalArgument("%s setting [%s], not dynamically updateable", scope, key)
	case st.use == final:
		return mlerr.IllegalArgument("final %s setting [%s], not updateable", scope, key)
	case isNull(raw):
		sc.resets = append(sc.resets, key)
		return nil
	}
	v, err := st.normalize(raw)
	if err != nil {
		return err
	}
	if st.use == remoteOnly && string(v) == `"true"` {
		return mlerr.IllegalArgument("mlsidecar serves remote models only: [%s] cannot be set to [true]", key)
	}
	sc.set[key] = v
	return nil
}

// applyTo changes doc; false when nothing changed.
func (ch *Changes) applyTo(doc *indexstore.MLSettings) bool {
	changed := false
	for scope, sc := range ch.scopes {
		m := &doc.Persistent
		if scope == Transient {
			m = &doc.Transient
		}
		for _, pattern := range sc.resets {
			for k := range *m {
				if simpleMatch(pattern, k) {
					delete(*m, k)
					changed = true
				}
			}
		}
		for k, v := range sc.set {
			if *m == nil {
				*m = map[string]json.RawMessage{}
			}
			if !bytes.Equal((*m)[k], v) {
				(*m)[k] = v
				changed = true
			}
		}
		if len(*m) == 0 {
			*m = nil
		}
	}
	return changed
}

// Store writes the changes into the settings document, with optimistic
// concurrency (another replica's concurrent update is kept), and puts the
// result in force here at once.
func (s *Service) Store(ctx context.Context, ch *Changes) error {
	now := s.now().UnixMilli()
	mutate := func(d *indexstore.MLSettings) error {
		if !ch.applyTo(d) {
			return indexstore.ErrUnchanged
		}
		d.UpdateTime = now
		return nil
	}
	for range 3 {
		res, doc, err := indexstore.Modify(ctx, s.repo, indexstore.MLSettingsID, indexstore.NoWait, mutate)
		if errors.Is(err, indexstore.ErrNotFound) {
			doc = &indexstore.MLSettings{}
			if mutate(doc) != nil {
				return nil // resets of settings never stored
			}
			res, err = s.repo.Create(ctx, indexstore.MLSettingsID, doc, indexstore.NoWait)
			if errors.Is(err, indexstore.ErrConflict) {
				continue // another replica stored the first settings just now
			}
		}
		switch {
		case errors.Is(err, indexstore.ErrUnchanged):
			return nil
		case err != nil:
			return fmt.Errorf("storing the ML Commons settings: %w", err)
		}
		s.mu.Lock()
		s.install(doc, res.At())
		s.mu.Unlock()
		return nil
	}
	return fmt.Errorf("storing the ML Commons settings: %w", indexstore.ErrConflict)
}
