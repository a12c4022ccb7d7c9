package tokens

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// A token is the same every time for one object, and differs for another purpose,
// namespace, name, owner UID or key, so no token opens anything but its own door.
func TestTokensAreBoundToPurposeObjectAndKey(t *testing.T) {
	ctx := context.Background()
	key := Static("0123456789abcdef0123456789abcdef")
	base, _ := key.Token(ctx, PurposeNotebook, "team-a", "lab", "uid-1")
	again, _ := key.Token(ctx, PurposeNotebook, "team-a", "lab", "uid-1")
	if base != again || len(base) != 48 {
		t.Fatalf("token %q then %q: want one stable 48-character token", base, again)
	}
	for _, tc := range []struct {
		name                  string
		key                   Static
		purpose, ns, obj, uid string
	}{
		{"purpose", key, PurposeSweepMetrics, "team-a", "lab", "uid-1"},
		{"namespace", key, PurposeNotebook, "team-b", "lab", "uid-1"},
		{"name", key, PurposeNotebook, "team-a", "lab2", "uid-1"},
		{"re-created object", key, PurposeNotebook, "team-a", "lab", "uid-2"},
		{"parts shifted across the separator", key, PurposeNotebook, "team-al", "ab", "uid-1"},
		{"key", Static("another key of thirty-two bytes!"), PurposeNotebook, "team-a", "lab", "uid-1"},
	} {
		got, _ := tc.key.Token(ctx, tc.purpose, tc.ns, tc.obj, types.UID(tc.uid))
		if got == base {
			t.Errorf("another %s gives the same token", tc.name)
		}
	}
	if !Equal(base, again) || Equal(base[:47]+"x", base) || Equal("", "") {
		t.Error("Equal compares wrongly")
	}
}
