package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mlsidecar/mlsidecar/mlcommons"
)

// Only GET and PUT of the cluster settings reach the settings handler;
// everything else takes the forwarding path as before.
func TestRouterSendsClusterSettingsToTheSettingsHandler(t *testing.T) {
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	log := slog.New(slog.DiscardHandler)
	noAuth := func(h http.Handler) http.Handler { return h }
	r := newRouter(mlcommons.New(mlcommons.Options{Logger: log}), noAuth, handler("settings"), handler("proxy"))
	tests := []struct {
		method, target, want string
	}{
		{"PUT", "/_cluster/settings", "settings"},
		{"GET", "/_cluster/settings?include_defaults=true&flat_settings=true", "settings"},
		{"PUT", "/_cluster/settings/", "settings"},
		{"PUT", "/_cluster/%73ettings", "settings"}, // the cluster decodes it too
		{"HEAD", "/_cluster/settings", "proxy"},
		{"POST", "/_cluster/settings", "proxy"},
		{"GET", "/_cluster/settingsx", "proxy"},
		{"GET", "/_cluster/health", "proxy"},
		{"PUT", "/index/_settings", "proxy"},
		{"GET", "/_nodes/settings", "proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
			if got := rec.Body.String(); got != tt.want {
				t.Errorf("went to %q, want %q", got, tt.want)
			}
		})
	}
}
