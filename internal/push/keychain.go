package push

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
)

// keychain resolves registry credentials from a kubernetes.io/dockerconfigjson
// Secret's auths, by registry host; other registries are reached anonymously.
type keychain map[string]authn.AuthConfig

func keychainFrom(s *corev1.Secret) (keychain, error) {
	raw, ok := s.Data[corev1.DockerConfigJsonKey]
	if !ok {
		return nil, fmt.Errorf("Secret %s has no %s key: create it with kubectl create secret docker-registry", s.Name, corev1.DockerConfigJsonKey)
	}
	var cfg struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("Secret %s: %s is not a Docker config: %w", s.Name, corev1.DockerConfigJsonKey, err)
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
