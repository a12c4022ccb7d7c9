package sourcebuild

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// keychain resolves registry credentials from a Docker config's auths (the
// registry Secret's .dockerconfigjson, mounted as config.json), by registry
// host; other registries are reached anonymously.
type keychain map[string]authn.AuthConfig

func keychainFrom(raw []byte) (keychain, error) {
	var cfg struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	// The error says where, not what: json's messages quote the input.
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("the registry Secret's config.json is not a Docker config (create it with kubectl create secret docker-registry)")
	}
	k := keychain{}
	for host, a := range cfg.Auths {
		k[registryHost(host)] = a
	}
	return k, nil
}

// registryHost reduces a Docker config's key (which may be a URL, as in
// https://index.docker.io/v1/) to the registry's host.
func registryHost(key string) string {
	h := key
	if _, rest, ok := strings.Cut(h, "://"); ok {
		h = rest
	}
	h, _, _ = strings.Cut(h, "/")
	if h == "docker.io" {
		h = name.DefaultRegistry
	}
	return h
}

func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if a, ok := k[registryHost(r.RegistryStr())]; ok {
		return authn.FromConfig(a), nil
	}
	return authn.Anonymous, nil
}
