package push

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
)

// The queue holds one request per object, the newest, and refuses new objects
// once MaxQueued wait.
func TestEnqueue(t *testing.T) {
	d := &Deployer{Options: Options{MaxQueued: 2}}
	steps := []struct {
		target, commit string
		err            error
	}{
		{"a", "1", nil}, {"a", "2", nil}, {"b", "1", nil},
		{"c", "1", ErrQueueFull},
		{"b", "2", nil}, // waiting already: replaced, not refused
	}
	for i, s := range steps {
		err := d.Enqueue(Request{Target: target(s.target, "https://g.example/r", "main"), Commit: s.commit})
		if !errors.Is(err, s.err) {
			t.Errorf("step %d: Enqueue(%s@%s) = %v, want %v", i, s.target, s.commit, err, s.err)
		}
	}
	got := map[string]string{}
	for k, r := range d.pending {
		got[k] = r.Commit
	}
	if diff := cmp.Diff(map[string]string{"modelserver/team/a": "2", "modelserver/team/b": "2"}, got); diff != "" {
		t.Errorf("waiting (-want +got):\n%s", diff)
	}
	if n := d.queue.Len(); n != 2 {
		t.Errorf("queue length %d, want 2 (one entry per object)", n)
	}
}

func TestKeychain(t *testing.T) {
	s := &corev1.Secret{Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{
		"https://index.docker.io/v1/": {"auth": "dXNlcjpodWI="},
		"registry.example:5000": {"username": "u", "password": "p"}}}`)}}
	k, err := keychainFrom(s)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]authn.AuthConfig{
		"docker.io/library/python":         {Username: "user", Password: "hub"},
		"registry.example:5000/team/model": {Username: "u", Password: "p"},
		"other.example/team/model":         {},
	}
	for ref, want := range tests {
		repo, err := name.NewRepository(ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := k.Resolve(repo)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if got.Username != want.Username || got.Password != want.Password {
			t.Errorf("%s: %s/%s, want %s/%s", ref, got.Username, got.Password, want.Username, want.Password)
		}
	}
	if _, err := keychainFrom(&corev1.Secret{Data: map[string][]byte{"config.json": nil}}); err == nil {
		t.Error("a Secret without .dockerconfigjson was taken")
	}
}
