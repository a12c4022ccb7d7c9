package push

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
	clocktesting "k8s.io/utils/clock/testing"
)

// blockingTargets holds every lookup until release closes, so deliveries pile up.
type blockingTargets struct {
	tableTargets
	entered chan struct{}
	release chan struct{}
}

func (b *blockingTargets) Find(ctx context.Context, repos []string) ([]Target, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.tableTargets.Find(ctx, repos)
}

func signedPush(repo, delivery string) *http.Request {
	body := githubBody(repo, "refs/heads/main")
	req := httptest.NewRequest(http.MethodPost, GitHubPath, strings.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", Sign([]byte(body), []byte("a-hook-secret")))
	return req
}

// Beyond MaxConcurrent deliveries at once, the server answers 503 at once
// rather than queueing connections.
func TestServerBoundsConcurrentDeliveries(t *testing.T) {
	targets := &blockingTargets{entered: make(chan struct{}, 10), release: make(chan struct{})}
	s := &Server{
		Receiver: &Receiver{Targets: targets, Queue: &listQueue{}, Deliveries: NewDeliveries(10, time.Hour, clocktesting.NewFakeClock(time.Now()))},
		Options:  ServerOptions{MaxConcurrent: 2},
	}
	h := s.Handler()
	done := make(chan int, 2)
	for i := range 2 {
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, signedPush("https://github.com/acme/a.git", fmt.Sprint("d", i)))
			done <- rec.Code
		}()
	}
	<-targets.entered
	<-targets.entered
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signedPush("https://github.com/acme/a.git", "d3"))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("a third delivery at once: %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	close(targets.release)
	<-done
	<-done
}

// Each repository has its own rate of verified deliveries; another repository's
// is untouched, and forged deliveries use up none of it.
func TestServerLimitsEachRepository(t *testing.T) {
	a, b := target("a", "https://github.com/acme/a.git", "main"), target("b", "https://github.com/acme/b.git", "main")
	targets := &tableTargets{targets: []Target{a, b}, secrets: map[string]string{a.String(): "a-hook-secret", b.String(): "a-hook-secret"}}
	s := &Server{
		Receiver: &Receiver{Targets: targets, Queue: &listQueue{}, Deliveries: NewDeliveries(100, time.Hour, clocktesting.NewFakeClock(time.Now()))},
		Options:  ServerOptions{PerRepository: rate.Every(time.Hour), Burst: 2},
	}
	h := s.Handler()
	send := func(repo, delivery string, forged bool) int {
		req := signedPush(repo, delivery)
		if forged {
			req.Header.Set("X-Hub-Signature-256", Sign([]byte("other"), []byte("guess")))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range 5 {
		if code := send(a.Config.Repository, fmt.Sprint("forged", i), true); code != http.StatusUnauthorized {
			t.Fatalf("forged delivery: %d, want 401", code)
		}
	}
	for i, want := range []int{http.StatusAccepted, http.StatusAccepted, http.StatusTooManyRequests} {
		if code := send(a.Config.Repository, fmt.Sprint("a", i), false); code != want {
			t.Errorf("delivery %d for a: %d, want %d", i, code, want)
		}
	}
	if code := send(b.Config.Repository, "b0", false); code != http.StatusAccepted {
		t.Errorf("another repository's delivery: %d, want 202", code)
	}
}
