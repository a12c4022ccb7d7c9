package webhook

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/push"
	"kiln.dev/kiln/internal/webhook"
)

// The push receiver has its own server and its own timeouts: a delivery whose
// 1 MiB body comes at one byte a second is cut off at the read timeout (short
// here, 1 s; 15 s by default), and all the while the webhooks, on their own
// server, keep answering the API server.
func TestSlowPushBodyIsCutOffWhileWebhooksAnswer(t *testing.T) {
	ctx := context.Background()
	scheme, err := manager.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(plane.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	o := servingOptions(t)
	if err := webhook.Setup(mgr, o); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	srv := &push.Server{
		Receiver: &push.Receiver{Targets: noTargets{}, Queue: nil, Deliveries: push.NewDeliveries(10, time.Hour, clock.RealClock{})},
		Options:  push.ServerOptions{Addr: addr, CertDir: o.CertDir, ReadHeaderTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second},
	}
	if err := mgr.Add(srv); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	c := newClient(t, plane.Config, nil)
	ns := namespace(t, c, nil)
	// The webhooks answer (a TrainingJob is admitted) before, during and after.
	admitted := 0
	admit := func() {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			err := c.Create(ctx, trainingJob(ns, fmt.Sprintf("while-slow-%d", admitted), 0))
			if err == nil {
				admitted++
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the webhooks did not answer: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	admit()

	var conn *tls.Conn
	for deadline := time.Now().Add(30 * time.Second); ; {
		conn, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's own server
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the push server does not listen: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: kiln-push\r\nContent-Type: application/json\r\nContent-Length: %d\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: slow\r\n\r\n", push.GitHubPath, 1<<20)
	cut := make(chan time.Duration, 1)
	go func() {
		// The server answers (or hangs up) once its read timeout passes; either
		// ends this read.
		_, _ = http.ReadResponse(bufio.NewReader(conn), nil)
		cut <- time.Since(start)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	sent := 0
	for {
		select {
		case after := <-cut:
			t.Logf("cut off after %s and %d of %d bytes; %d TrainingJobs admitted meanwhile", after, sent, 1<<20, admitted)
			if after > 10*time.Second {
				t.Errorf("the slow body was cut off only after %s", after)
			}
			admit() // and after
			return
		case <-tick.C:
			if _, err := conn.Write([]byte(" ")); err == nil {
				sent++
			}
			admit()
			if time.Since(start) > 30*time.Second {
				t.Fatal("the slow body was not cut off in 30s")
			}
		}
	}
}

type noTargets struct{ push.Targets }
