// Package fetch downloads a TrainingJob's data input or a ModelServer's model
// from object storage into a directory. It is what the fetch image runs as an
// init step (cmd/kiln-fetch): two arguments, the URI and the directory, and the
// credentials as environment variables from the object's Secret.
//
// Nothing half-downloaded is left under its final name: every file is written
// beside it and renamed when complete, so a step that fails and runs again
// starts from a clean state or finds whole files only.
package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Env are the environment variables a fetch reads; each is optional.
//
//	AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN  s3:// credentials (none: anonymous)
//	AWS_REGION                                                   the bucket's region
//	AWS_ENDPOINT_URL                                             an S3-compatible server, e.g. http://minio.data:9000
//	GOOGLE_HMAC_ACCESS_ID, GOOGLE_HMAC_SECRET                    gs:// HMAC keys (none: anonymous)
//	STORAGE_EMULATOR_HOST                                        a GCS-compatible server for gs://, as an http(s):// URL
//	HTTP_AUTHORIZATION                                           sent as the Authorization header for https://
type Env func(string) string

// Options tune a fetch; the zero value is what the fetch image uses.
type Options struct {
	// HTTPClient makes every request; nil uses http.DefaultClient.
	HTTPClient *http.Client
	// Progress gets a line per file; nil is silent.
	Progress io.Writer
	// MaxBytes bounds the total download; 0 is no bound beyond the volume's.
	MaxBytes int64
}

// Fetch downloads uri into dir, which it creates. An https:// URI is one
// file; an s3:// or gs:// URI is an object, or every object under a prefix
// ending in "/", kept at its path below the prefix. A "#sha256=<hex>"
// fragment on an https:// URI is checked before the file is kept.
func Fetch(ctx context.Context, uri, dir string, env Env, o Options) error {
	u, err := url.Parse(uri)
	if err != nil {
		return errors.New("the URI does not parse")
	}
	if u.Host == "" {
		return fmt.Errorf("%s names no host or bucket", shown(u))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if env == nil {
		env = func(string) string { return "" }
	}
	f := &fetcher{dir: dir, env: env, o: o}
	switch u.Scheme {
	case "https":
		return f.https(ctx, u)
	case "s3", "gs":
		return f.bucket(ctx, u)
	default:
		return fmt.Errorf("%s: only s3://, gs:// and https:// are fetched (pvc:// is mounted, not fetched)", shown(u))
	}
}

type fetcher struct {
	dir     string
	env     Env
	o       Options
	written int64
}

func (f *fetcher) https(ctx context.Context, u *url.URL) error {
	want, err := checksum(u.Fragment)
	if err != nil {
		return err
	}
	u.Fragment = ""
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" {
		return fmt.Errorf("%s names no file: give the file's path, such as https://%s/model.tar.gz", shown(u), u.Host)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	if a := f.env("HTTP_AUTHORIZATION"); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := f.o.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", shown(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = "; put an Authorization header value in the Secret's HTTP_AUTHORIZATION key"
		}
		return fmt.Errorf("downloading %s: %s%s", shown(u), resp.Status, hint)
	}
	return f.save(name, resp.Body, want)
}

// shown is the URI as messages print it: a query may carry a signature (a
// presigned URL), and user information a password.
func shown(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// checksum reads a "sha256=<hex>" fragment.
func checksum(fragment string) ([]byte, error) {
	if fragment == "" {
		return nil, nil
	}
	hexSum, ok := strings.CutPrefix(fragment, "sha256=")
	sum, err := hex.DecodeString(hexSum)
	if !ok || err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("the URI's fragment %q is not sha256=<64 hex digits>", fragment)
	}
	return sum, nil
}

// save writes r to name under the directory, through a temporary file renamed
// once complete (and, with want, once its SHA-256 matches).
func (f *fetcher) save(name string, r io.Reader, want []byte) error {
	dst, err := f.target(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".kiln-fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	// CreateTemp makes the file 0600, readable only by the fetch step's user (65532); the
	// workload that reads it may run as any other user, so it is readable by all, as
	// a file the workload mounts read-only should be.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	h := sha256.New()
	limit := r
	if f.o.MaxBytes > 0 {
		limit = io.LimitReader(r, f.o.MaxBytes-f.written+1)
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), limit)
	f.written += n
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if f.o.MaxBytes > 0 && f.written > f.o.MaxBytes {
		return fmt.Errorf("the download is larger than the %d bytes allowed", f.o.MaxBytes)
	}
	if want != nil && !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("%s: SHA-256 is %x, the URI asks for %x; nothing was kept", name, h.Sum(nil), want)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	if f.o.Progress != nil {
		fmt.Fprintf(f.o.Progress, "fetched %s (%d bytes)\n", name, n)
	}
	return nil
}

// target is name's place under the directory; a name that would leave it
// (an object key with a ".." segment) is refused.
func (f *fetcher) target(name string) (string, error) {
	clean := path.Clean("/" + name)
	if clean == "/" || slices.Contains(strings.Split(name, "/"), "..") {
		return "", fmt.Errorf("refusing to write %q: it is not a file name below the download directory", name)
	}
	return filepath.Join(f.dir, filepath.FromSlash(clean)), nil
}
