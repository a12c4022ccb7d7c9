package build

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// RegistryError is a registry call that failed, said in one line: which registry, what was
// being done, and what to do about it.
type RegistryError struct {
	// Registry is the registry's host (and port).
	Registry string
	// Op says what was attempted, e.g. "push to".
	Op string
	// Problem is the short cause, e.g. "401 Unauthorized".
	Problem string
	// Hint says what to do.
	Hint string
	// Err is the underlying error.
	Err error
}

func (e *RegistryError) Error() string {
	return fmt.Sprintf("cannot %s registry %s: %s; %s", e.Op, e.Registry, e.Problem, e.Hint)
}

func (e *RegistryError) Unwrap() error { return e.Err }

// registryError classifies err from a registry call. The underlying messages are long
// (response bodies, retries), so the line keeps only the status or the network cause.
func registryError(registry, op string, err error) error {
	e := &RegistryError{Registry: registry, Op: op, Err: err}
	var terr *transport.Error
	var nerr net.Error
	var opErr *net.OpError
	switch {
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden):
		e.Problem = fmt.Sprintf("%d %s", terr.StatusCode, http.StatusText(terr.StatusCode))
		e.Hint = fmt.Sprintf("log in with `docker login %s` (Kiln reads the Docker config's credentials) and check that the account has access to the repository", registry)
	case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		e.Problem = "404 Not Found"
		e.Hint = "check the image name and tag"
	case errors.As(err, &terr):
		e.Problem = fmt.Sprintf("%d %s", terr.StatusCode, http.StatusText(terr.StatusCode))
		e.Hint = "the registry refused the request; check its logs or try again"
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		e.Problem = "it speaks plain HTTP"
		e.Hint = "add --insecure-registry for a local registry without TLS"
	case errors.As(err, &opErr) || errors.As(err, &nerr):
		cause := err.Error()
		if opErr != nil {
			cause = opErr.Err.Error()
		}
		e.Problem = "unreachable (" + cause + ")"
		e.Hint = "check the registry address and that it is running and reachable from here"
	default:
		return fmt.Errorf("cannot %s registry %s: %w", op, registry, err)
	}
	return e
}
