// Package tokens derives the access tokens Kiln hands to tenant pods (a notebook's
// Jupyter token, a Sweep trial's metrics token) from one key in Kiln's own namespace.
//
// The manager needs those tokens again later (to ask Jupyter whether a notebook is idle,
// to check a trial's metrics push). Reading them back from the tenant's Secret would need
// `get secrets` in every namespace, which is the right to read every Secret of the
// cluster. Deriving them instead needs only the key, read by name from Kiln's namespace;
// the Secrets in tenant namespaces are created and never read.
package tokens

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SecretName is the Secret in Kiln's namespace that holds the key.
const SecretName = "kiln-token-key"

const keyField = "key"

// Purposes keep a token for one use from being valid for another.
const (
	PurposeNotebook     = "notebook"
	PurposeSweepMetrics = "sweep-metrics"
)

// Source derives tokens. Keyring is the one the manager uses; Static serves tests.
type Source interface {
	// Token is the token for purpose of the object namespace/name, bound to uid (the
	// object's, or its owner's), so an object re-created under the same name gets a new one.
	Token(ctx context.Context, purpose, namespace, name string, uid types.UID) (string, error)
}

// Keyring reads (or, the first time, creates) the key Secret in Namespace, and keeps
// the key in memory once read. Every replica derives the same tokens from it.
type Keyring struct {
	// Reader reads the Secret by name from the API server: the manager caches no Secrets.
	Reader client.Reader
	// Writer creates it when absent.
	Writer    client.Writer
	Namespace string

	mu  sync.Mutex
	key []byte
}

// Token implements Source.
func (k *Keyring) Token(ctx context.Context, purpose, namespace, name string, uid types.UID) (string, error) {
	key, err := k.load(ctx)
	if err != nil {
		return "", err
	}
	return derive(key, purpose, namespace, name, uid), nil
}

func (k *Keyring) load(ctx context.Context) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key != nil {
		return k.key, nil
	}
	s := &corev1.Secret{}
	ref := client.ObjectKey{Namespace: k.Namespace, Name: SecretName}
	err := k.Reader.Get(ctx, ref, s)
	if apierrors.IsNotFound(err) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: SecretName,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "kiln"}},
			Data: map[string][]byte{keyField: key},
		}
		err = k.Writer.Create(ctx, s)
		if apierrors.IsAlreadyExists(err) {
			// Another replica was first; its key is the one.
			err = k.Reader.Get(ctx, ref, s)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the token key Secret %s/%s: %w", k.Namespace, SecretName, err)
	}
	if len(s.Data[keyField]) < 16 {
		return nil, errors.New("the token key Secret " + k.Namespace + "/" + SecretName + " holds no key of at least 16 bytes")
	}
	k.key = s.Data[keyField]
	return k.key, nil
}

// Static derives tokens from a fixed key; for tests and the offline renderer.
type Static []byte

// Token implements Source.
func (s Static) Token(_ context.Context, purpose, namespace, name string, uid types.UID) (string, error) {
	return derive(s, purpose, namespace, name, uid), nil
}

func derive(key []byte, purpose, namespace, name string, uid types.UID) string {
	m := hmac.New(sha256.New, key)
	// NUL cannot occur in any of the parts, so no two inputs join to the same message.
	for _, part := range []string{purpose, namespace, name, string(uid)} {
		m.Write([]byte(part))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil)[:24])
}

// Equal compares a presented token with the expected one in constant time.
func Equal(presented, want string) bool {
	return want != "" && hmac.Equal([]byte(presented), []byte(want))
}
