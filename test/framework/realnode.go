package framework

import (
	"os"
	"testing"

	"kiln.dev/kiln/internal/controlplane"
)

// RealNodeRequired says whether real-node tests must run rather than skip: in CI (CI=true) on a
// machine running as root, where `make tools` installs what a real node needs, a missing piece is
// a broken machine or setup, not a laptop without root, and a skip would hide it.
func RealNodeRequired() bool {
	return os.Getenv("CI") == "true" && os.Geteuid() == 0
}

// RealNodeMissing is why this machine cannot run a real node, "" when it can
// (controlplane.DetectRealNode on this host).
func RealNodeMissing() string {
	return controlplane.DetectRealNode(controlplane.HostProbes())
}

// SkipWithoutRealNode skips t because no real node can run here (reason says why), or fails it
// where RealNodeRequired. Every test that needs a real node goes through it; a reason of ""
// returns at once.
func SkipWithoutRealNode(t testing.TB, reason string) {
	t.Helper()
	if reason == "" {
		return
	}
	if RealNodeRequired() {
		t.Fatalf("no real node: %s — CI=true as root must run the real-node tests, not skip them (make tools installs what they need)", reason)
		return
	}
	t.Skip("this machine cannot run a real node: " + reason)
}
