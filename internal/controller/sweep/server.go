package sweep

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/tokens"
)

// MaxPushBytes bounds a push's body: a report is a handful of numbers.
const MaxPushBytes = 64 << 10

// MetricsServer takes trials' metrics over HTTP:
//
//	POST <base>/v1alpha1/namespaces/NAMESPACE/trials/TRIAL/metrics
//	Authorization: Bearer <KILN_METRICS_TOKEN>
//
// with a JSON object of numbers or kiln-metric lines as the body. The token is the
// trial's own, which Kiln put in a Secret for it; any other gets 401 and changes nothing.
// The server derives the expected token again from the trial's name and its Sweep's
// UID (package tokens) rather than reading the Secret back.
type MetricsServer struct {
	// Addr is where it listens, such as ":8444".
	Addr string
	// CertDir holds tls.crt and tls.key; empty serves plain HTTP.
	CertDir string
	// Client reads trials (TrainingJobs) from the cache.
	Client   client.Client
	Tokens   tokens.Source
	Recorder *Recorder
}

// NeedLeaderElection is false: every replica takes pushes; writes carry the
// resourceVersion they read, so replicas never overwrite each other.
func (s *MetricsServer) NeedLeaderElection() bool { return false }

// Start serves until ctx is done.
func (s *MetricsServer) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("sweep-metrics")
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("sweep metrics server: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1alpha1/namespaces/{namespace}/trials/{trial}/metrics", s.push)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctrl.LoggerInto(context.Background(), log) },
	}
	if s.CertDir != "" {
		w, err := certwatcher.New(filepath.Join(s.CertDir, "tls.crt"), filepath.Join(s.CertDir, "tls.key"))
		if err != nil {
			return fmt.Errorf("sweep metrics server certificates: %w", err)
		}
		go func() {
			if err := w.Start(ctx); err != nil {
				log.Error(err, "watching the certificates")
			}
		}()
		l = tls.NewListener(l, &tls.Config{GetCertificate: w.GetCertificate, MinVersion: tls.VersionTLS12})
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("serving trials' metrics", "addr", l.Addr().String(), "tls", s.CertDir != "")
	select {
	case err := <-errc:
		return fmt.Errorf("sweep metrics server: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

func (s *MetricsServer) push(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	key := client.ObjectKey{Namespace: r.PathValue("namespace"), Name: r.PathValue("trial")}
	if !s.authorized(ctx, key, r.Header.Get("Authorization")) {
		// One answer for a wrong token, a missing one and an unknown trial, so a
		// caller learns nothing about which trials exist.
		w.Header().Set("WWW-Authenticate", `Bearer realm="kiln-sweep-metrics"`)
		http.Error(w, "a trial's own KILN_METRICS_TOKEN is needed as the bearer token", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPushBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		http.Error(w, fmt.Sprintf("the body is larger than %d bytes", MaxPushBytes), http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	reports, err := ParseBody(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	err = s.Recorder.Record(ctx, key, reports)
	switch {
	case errors.Is(err, ErrTrialStopped):
		http.Error(w, "the trial was stopped early; its process may exit", http.StatusConflict)
	case apierrors.IsNotFound(err):
		http.Error(w, "the trial is gone", http.StatusGone)
	case err != nil:
		ctrl.LoggerFrom(ctx).Error(err, "recording a trial's metrics", "trial", key.String())
		http.Error(w, "the metrics could not be stored; try again", http.StatusServiceUnavailable)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// authorized compares the bearer token with the trial's in constant time.
func (s *MetricsServer) authorized(ctx context.Context, key client.ObjectKey, header string) bool {
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || token == "" {
		return false
	}
	trial := &v1alpha1.TrainingJob{}
	if err := s.Client.Get(ctx, key, trial); err != nil {
		if !apierrors.IsNotFound(err) {
			ctrl.LoggerFrom(ctx).Error(err, "reading a trial", "trial", key.String())
		}
		return false
	}
	owner := metav1.GetControllerOf(trial)
	if owner == nil || owner.Kind != "Sweep" || owner.APIVersion != v1alpha1.GroupVersion.String() {
		return false
	}
	want, err := s.Tokens.Token(ctx, tokens.PurposeSweepMetrics, key.Namespace, key.Name, owner.UID)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "deriving a trial's metrics token", "trial", key.String())
		return false
	}
	return tokens.Equal(token, want)
}
