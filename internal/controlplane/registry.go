package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// LocalRegistryName is the stable name images on the local registry go by, whatever port it
// listens on: containerd maps it to the registry (hosts.toml), and ResolveLocalImage maps it
// for clients that push, such as `kubectl kiln build`.
const LocalRegistryName = "kiln.local"

// localRegistry is an OCI registry served from this process. Blobs live on disk under its
// folder; manifests and tags are kept in memory by the registry package, so they last as long
// as the plane (images the plane needs are pushed again at each start).
type localRegistry struct {
	addr string
	srv  *http.Server
	done chan error
}

func startRegistry(dir string, logOut io.Writer) (*localRegistry, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the local registry: %w", err)
	}
	h := registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(dir)), registry.Logger(log.New(logOut, "", log.LstdFlags)))
	r := &localRegistry{addr: l.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}, done: make(chan error, 1)}
	go func() { r.done <- r.srv.Serve(l) }()
	return r, nil
}

func (r *localRegistry) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	if serveErr := <-r.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// ResolveLocalImage rewrites an image reference on LocalRegistryName to the registry's real
// address (127.0.0.1:PORT), for clients on this machine; other references come back unchanged
// with false.
func ResolveLocalImage(ref, registryAddr string) (string, bool) {
	if rest, ok := strings.CutPrefix(ref, LocalRegistryName+"/"); ok && registryAddr != "" {
		return registryAddr + "/" + rest, true
	}
	return ref, false
}
