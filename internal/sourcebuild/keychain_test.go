package sourcebuild

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestKeychain(t *testing.T) {
	k, err := keychainFrom([]byte(`{"auths":{
		"https://index.docker.io/v1/": {"auth": "dXNlcjpodWI="},
		"registry.example:5000": {"username": "u", "password": "p"}}}`))
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
	if _, err := keychainFrom([]byte("the token, not JSON")); err == nil || strings.Contains(err.Error(), "token") {
		t.Errorf("a config.json that is not JSON: %v, want an error that quotes nothing of it", err)
	}
}
