package notebook

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kiln.dev/kiln/api/v1alpha1"
)

// fakeJupyter serves Jupyter Server's /api/status and /api/kernels as Jupyter
// does, requiring the token.
func fakeJupyter(t *testing.T, token string, last time.Time, kernelStates ...string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	authorized := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "token "+token {
			http.Error(w, `{"message": "Forbidden", "reason": null}`, http.StatusForbidden)
			return false
		}
		return true
	}
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"started":       last.Add(-time.Hour).Format("2006-01-02T15:04:05.000000Z"),
			"last_activity": last.Format("2006-01-02T15:04:05.000000Z"),
			"connections":   1,
			"kernels":       len(kernelStates),
		})
	})
	mux.HandleFunc("GET /api/kernels", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		var ks []map[string]any
		for i, s := range kernelStates {
			ks = append(ks, map[string]any{"id": string(rune('a' + i)), "name": "python3", "execution_state": s, "connections": 1})
		}
		_ = json.NewEncoder(w).Encode(ks)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestJupyterStatus(t *testing.T) {
	last := time.Date(2026, 11, 29, 9, 30, 0, 123456000, time.UTC)
	nb := &v1alpha1.Notebook{}
	nb.Name, nb.Namespace = "nb", "ns"
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	notJupyter := httptest.NewServer(http.NotFoundHandler())
	defer notJupyter.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) }))
	defer garbage.Close()

	tests := []struct {
		name    string
		url     string
		token   string
		want    Activity
		wantErr string
	}{
		{name: "idle server", url: fakeJupyter(t, "s3cret", last).URL, token: "s3cret", want: Activity{Last: last}},
		{name: "idle kernels", url: fakeJupyter(t, "s3cret", last, "idle", "idle").URL, token: "s3cret", want: Activity{Last: last}},
		{name: "a busy kernel", url: fakeJupyter(t, "s3cret", last, "idle", "busy").URL, token: "s3cret", want: Activity{Last: last, Busy: true}},
		{name: "wrong token", url: fakeJupyter(t, "s3cret", last).URL, token: "other", wantErr: "refused the notebook's token"},
		{name: "not a Jupyter server", url: notJupyter.URL, token: "x", wantErr: "does not serve Jupyter's REST API"},
		{name: "not JSON", url: garbage.URL, token: "x", wantErr: "not Jupyter's answer"},
		{name: "unreachable", url: closed.URL, token: "x", wantErr: "connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &JupyterStatus{BaseURL: func(*v1alpha1.Notebook) string { return tc.url }}
			got, err := src.Activity(context.Background(), nb, tc.token)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), tc.token) {
					t.Errorf("error %q shows the token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("activity (-want +got):\n%s", diff)
			}
		})
	}
}

// The default address is the Notebook's Service, which only resolves inside a
// cluster; outside one it fails fast rather than hanging.
func TestJupyterStatusThroughTheService(t *testing.T) {
	nb := &v1alpha1.Notebook{}
	nb.Name, nb.Namespace = "nb", "ns"
	var seen string
	src := &JupyterStatus{HTTPClient: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			seen = addr
			return nil, &net.OpError{Op: "dial", Err: net.UnknownNetworkError("test")}
		},
	}}}
	if _, err := src.Activity(context.Background(), nb, "t"); err == nil {
		t.Fatal("no error")
	}
	if seen != "nb.ns.svc:80" {
		t.Errorf("dialled %q, want the Service nb.ns.svc:80", seen)
	}
}
