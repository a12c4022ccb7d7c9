package push

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// DefaultAddr is where the push receiver listens: its own port, never the
// webhook server's, so a flood of deliveries cannot starve admission.
const DefaultAddr = ":9444"

// ServerOptions bound the receiver's server.
type ServerOptions struct {
	// Addr to listen on (default DefaultAddr).
	Addr string
	// CertDir holds tls.crt and tls.key (reloaded when they change); without it,
	// GetCertificate serves (the webhooks' self-issued certificate, which names
	// the push Service too).
	CertDir        string
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Timeouts of http.Server (defaults 5s, 15s, 15s, 60s): a body sent slowly is
	// cut off at ReadTimeout.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxConcurrent deliveries are served at once (default 16); more get 503.
	MaxConcurrent int
	// PerRepository is each repository's rate of verified deliveries (default one
	// every 5 s, bursts of 10); more get 429.
	PerRepository rate.Limit
	Burst         int
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, 5*time.Second)
	def(&o.ReadTimeout, 15*time.Second)
	def(&o.WriteTimeout, 15*time.Second)
	def(&o.IdleTimeout, 60*time.Second)
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 16
	}
	if o.PerRepository <= 0 {
		o.PerRepository = rate.Every(5 * time.Second)
	}
	if o.Burst <= 0 {
		o.Burst = 10
	}
	return o
}

// Server serves the Receiver on its own TLS port. It is a manager Runnable on
// every replica.
type Server struct {
	Receiver *Receiver
	Options  ServerOptions

	limiters *cache.LRUExpireCache
}

// NeedLeaderElection is false: every replica receives pushes.
func (s *Server) NeedLeaderElection() bool { return false }

// Handler is the receiver's paths behind the concurrency bound.
func (s *Server) Handler() http.Handler {
	o := s.Options.withDefaults()
	if s.limiters == nil {
		// Bounded: a flood of repositories cannot grow it without end; a limiter
		// forgotten after an idle hour starts full again, which is harmless.
		s.limiters = cache.NewLRUExpireCacheWithClock(10000, clock.RealClock{})
	}
	if s.Receiver.Limit == nil {
		s.Receiver.Limit = s.allow
	}
	mux := http.NewServeMux()
	mux.Handle(GitHubPath, s.Receiver.Handler(GitHub))
	mux.Handle(GitLabPath, s.Receiver.Handler(GitLab))
	slots := make(chan struct{}, o.MaxConcurrent)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			mux.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "10")
			http.Error(w, "too many deliveries at once; redeliver later", http.StatusServiceUnavailable)
		}
	})
}

// allow takes one token of repo's rate.
func (s *Server) allow(repo string) bool {
	o := s.Options.withDefaults()
	var l *rate.Limiter
	if v, ok := s.limiters.Get(repo); ok {
		l = v.(*rate.Limiter)
	} else {
		l = rate.NewLimiter(o.PerRepository, o.Burst)
		s.limiters.Add(repo, l, time.Hour)
	}
	return l.Allow()
}

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	o := s.Options.withDefaults()
	log := ctrl.LoggerFrom(ctx).WithName("push")
	getCert := o.GetCertificate
	if o.CertDir != "" {
		w, err := certwatcher.New(filepath.Join(o.CertDir, "tls.crt"), filepath.Join(o.CertDir, "tls.key"))
		if err != nil {
			return fmt.Errorf("push server certificate: %w", err)
		}
		go func() {
			if err := w.Start(ctx); err != nil {
				log.Error(err, "watching the push server's certificate")
			}
		}()
		getCert = w.GetCertificate
	}
	if getCert == nil {
		return errors.New("the push server has no certificate: give --push-cert-dir, or let the webhooks issue their own")
	}
	l, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("push server: %w", err)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctrl.LoggerInto(context.Background(), log) },
		// HTTP/1.1 only, as the webhooks: no HTTP/2 stream floods.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	tl := tls.NewListener(l, &tls.Config{GetCertificate: getCert, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tl) }()
	log.Info("serving push events", "addr", l.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("push server: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
