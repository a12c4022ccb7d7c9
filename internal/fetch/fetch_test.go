package fetch

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// files lists dir's regular files with their contents, by slash path.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		// The workload reading a fetched file may run as another user than the fetch step.
		if info, err := d.Info(); err == nil && info.Mode().Perm()&0o044 != 0o044 {
			t.Errorf("%s is %v, not readable by the workload's user", p, info.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

func env(kv ...string) Env {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestHTTPS(t *testing.T) {
	body := "weights"
	sum := sha256.Sum256([]byte(body))
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/private/model.bin" && r.Header.Get("Authorization") != "Bearer s3cret":
			http.Error(w, "no", http.StatusUnauthorized)
		case strings.HasSuffix(r.URL.Path, "/model.bin"):
			fmt.Fprint(w, body)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	tests := []struct {
		name    string
		uri     string
		env     Env
		want    map[string]string
		wantErr string
	}{
		{name: "a file", uri: srv.URL + "/m/model.bin", want: map[string]string{"model.bin": body}},
		{name: "checksum matches", uri: fmt.Sprintf("%s/m/model.bin#sha256=%x", srv.URL, sum), want: map[string]string{"model.bin": body}},
		{name: "checksum differs: nothing kept", uri: srv.URL + "/m/model.bin#sha256=" + strings.Repeat("0", 64), want: map[string]string{}, wantErr: "SHA-256 is"},
		{name: "bad checksum fragment", uri: srv.URL + "/m/model.bin#md5=abc", want: map[string]string{}, wantErr: "not sha256=<64 hex digits>"},
		{name: "authorization from the Secret", uri: srv.URL + "/private/model.bin", env: env("HTTP_AUTHORIZATION", "Bearer s3cret"), want: map[string]string{"model.bin": body}},
		{name: "unauthorized says what to set", uri: srv.URL + "/private/model.bin", want: map[string]string{}, wantErr: "401 Unauthorized; put an Authorization header value in the Secret's HTTP_AUTHORIZATION key"},
		{name: "not found, and a presigned query is not printed", uri: srv.URL + "/gone/x.bin?X-Amz-Signature=topsecret", want: map[string]string{}, wantErr: "/gone/x.bin: 404 Not Found"},
		{name: "no file name", uri: srv.URL + "/", want: map[string]string{}, wantErr: "names no file"},
		{name: "another scheme", uri: "ftp://example.com/x", want: map[string]string{}, wantErr: "only s3://, gs:// and https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			err := Fetch(context.Background(), tt.uri, dir, tt.env, Options{HTTPClient: srv.Client()})
			checkErr(t, err, tt.wantErr)
			if strings.Contains(fmt.Sprint(err), "topsecret") {
				t.Errorf("the error shows the URI's signature: %v", err)
			}
			if diff := cmp.Diff(tt.want, files(t, dir)); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("error = %v, want it to contain %q", err, want)
	}
}

// s3Server is an S3 protocol server holding the given objects in bucket
// "data"; with a key ID, requests signed with another are refused the way S3
// refuses them.
func s3Server(t *testing.T, keyID string, objects map[string]string) *httptest.Server {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("data"); err != nil {
		t.Fatal(err)
	}
	s3 := gofakes3.New(backend).Server()
	// Uploaded through the protocol, so objects carry what S3 would give them.
	up := httptest.NewServer(s3)
	defer up.Close()
	c, err := minio.New(strings.TrimPrefix(up.URL, "http://"), &minio.Options{Creds: credentials.NewStaticV4("up", "up", "")})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range objects {
		if _, err := c.PutObject(context.Background(), "data", k, strings.NewReader(v), int64(len(v)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if keyID != "" && !strings.Contains(r.Header.Get("Authorization"), "Credential="+keyID+"/") {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
			return
		}
		s3.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestBuckets(t *testing.T) {
	objects := map[string]string{
		"models/resnet/model.pt":        "pt",
		"models/resnet/config/cfg.json": "{}",
		"models/other/model.pt":         "other",
		"datasets/digits.csv":           "1,2,3",
	}
	open := s3Server(t, "", objects)
	locked := s3Server(t, "AKIDKILN", objects)

	tests := []struct {
		name     string
		uri      string
		env      Env
		maxBytes int64
		want     map[string]string
		wantErr  string
	}{
		{name: "one object", uri: "s3://data/datasets/digits.csv", env: env("AWS_ENDPOINT_URL", open.URL),
			want: map[string]string{"digits.csv": "1,2,3"}},
		{name: "a prefix keeps the paths below it", uri: "s3://data/models/resnet/", env: env("AWS_ENDPOINT_URL", open.URL),
			want: map[string]string{"model.pt": "pt", "config/cfg.json": "{}"}},
		{name: "gs:// through the S3 protocol", uri: "gs://data/models/other/", env: env("STORAGE_EMULATOR_HOST", open.URL),
			want: map[string]string{"model.pt": "other"}},
		{name: "signed with the Secret's keys", uri: "s3://data/datasets/digits.csv",
			env:  env("AWS_ENDPOINT_URL", locked.URL, "AWS_ACCESS_KEY_ID", "AKIDKILN", "AWS_SECRET_ACCESS_KEY", "x", "AWS_REGION", "us-east-1"),
			want: map[string]string{"digits.csv": "1,2,3"}},
		{name: "wrong keys say to check the Secret", uri: "s3://data/datasets/digits.csv",
			env:     env("AWS_ENDPOINT_URL", locked.URL, "AWS_ACCESS_KEY_ID", "AKIDOTHER", "AWS_SECRET_ACCESS_KEY", "x", "AWS_REGION", "us-east-1"),
			want:    map[string]string{},
			wantErr: "access denied (AccessDenied); check the keys in the Secret named by secretRef"},
		{name: "no such object", uri: "s3://data/models/missing.pt", env: env("AWS_ENDPOINT_URL", open.URL), want: map[string]string{}, wantErr: "no such object"},
		{name: "empty prefix", uri: "s3://data/nothing/", env: env("AWS_ENDPOINT_URL", open.URL), want: map[string]string{}, wantErr: "no object under that prefix"},
		{name: "no such bucket", uri: "s3://elsewhere/x.pt", env: env("AWS_ENDPOINT_URL", open.URL), want: map[string]string{}, wantErr: `no such bucket "elsewhere"`},
		{name: "a size bound", uri: "s3://data/models/resnet/", env: env("AWS_ENDPOINT_URL", open.URL), maxBytes: 3,
			want: map[string]string{"config/cfg.json": "{}"}, wantErr: "larger than the 3 bytes allowed"},
		{name: "a bad endpoint", uri: "s3://data/x", env: env("AWS_ENDPOINT_URL", "minio:9000"), want: map[string]string{}, wantErr: "is not an http:// or https:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			err := Fetch(context.Background(), tt.uri, dir, tt.env, Options{MaxBytes: tt.maxBytes})
			checkErr(t, err, tt.wantErr)
			if diff := cmp.Diff(tt.want, files(t, dir)); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTargetStaysInTheDirectory(t *testing.T) {
	f := &fetcher{dir: "/kiln/data/x"}
	for name, want := range map[string]string{
		"model.pt":          "/kiln/data/x/model.pt",
		"a/b/c.json":        "/kiln/data/x/a/b/c.json",
		"/abs/file":         "/kiln/data/x/abs/file",
		"../../etc/passwd":  "",
		"a/../../escape":    "",
		"":                  "",
		"sub/..":            "",
		"a/./b":             "/kiln/data/x/a/b",
		"dots..in..name.pt": "/kiln/data/x/dots..in..name.pt",
	} {
		got, err := f.target(name)
		if want == "" {
			if err == nil {
				t.Errorf("target(%q) = %q, want a refusal", name, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("target(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}
