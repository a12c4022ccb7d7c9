package controlplane

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a progress writer two goroutines can share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A second real node waits for the first, saying so once, and starts when the first lets go.
func TestRealNodeLockWaitsWithAProgressLine(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "realnode.lock")
	first := &realNode{lockPath: lock, out: &syncBuffer{}}
	if err := first.takeLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	second := &realNode{lockPath: lock, out: &out}
	got := make(chan error, 1)
	go func() { got <- second.takeLock(context.Background()) }()

	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "waiting for the other real node on this machine to stop") {
		if time.Now().After(deadline) {
			t.Fatalf("no progress line while waiting; got %q", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-got:
		t.Fatalf("the second node took the lock while the first held it (err %v)", err)
	default:
	}
	if err := first.releaseLock(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the second node did not get the lock after the first released it")
	}
	if n := strings.Count(out.String(), "waiting"); n != 1 {
		t.Errorf("progress line printed %d times, want once:\n%s", n, out.String())
	}
	if err := second.releaseLock(); err != nil {
		t.Fatal(err)
	}

	// A cancelled wait gives up with the context's error.
	third := &realNode{lockPath: lock, out: &syncBuffer{}}
	if err := third.takeLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer third.releaseLock()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := (&realNode{lockPath: lock, out: &syncBuffer{}}).takeLock(ctx); err == nil {
		t.Fatal("a cancelled wait must fail")
	}
}
