package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Keys of the certificate Secret: tls.crt and tls.key as in every TLS Secret,
// ca.crt the CAs clients trust (during a CA rotation, the new and the old one),
// ca.key the key that signs the next serving certificate.
const (
	keyCACert = "ca.crt"
	keyCAKey  = "ca.key"
	// FieldOwner owns the caBundle fields of the webhook configurations, and
	// nothing else of them.
	FieldOwner = "kiln-webhook-certs"
)

// Certs keeps the webhook serving certificate: it issues a CA and a serving
// certificate into a Secret in Kiln's namespace (or reuses the one there, so
// replicas and restarts share it), serves it, renews it before it expires, and
// writes the CA into the webhook configurations' caBundle. Every replica runs
// it; the Secret's resourceVersion makes concurrent renewals safe.
type Certs struct {
	// Client writes the Secret and the webhook configurations; Reader reads them
	// from the API server (the manager does not cache them).
	Client client.Client
	Reader client.Reader
	Clock  clock.Clock

	Namespace  string
	SecretName string
	// DNSNames and IPs the serving certificate is valid for.
	DNSNames []string
	IPs      []net.IP
	// Mutating and Validating name the webhook configurations to inject into.
	Mutating, Validating string
	// Validity of a serving certificate; it is renewed when a third remains. The
	// CA lives ten times as long and is renewed the same way.
	Validity time.Duration
	// Interval between checks of the Secret and the configurations.
	Interval time.Duration

	cert     atomic.Pointer[tls.Certificate]
	injected atomic.Bool
}

// NeedLeaderElection is false: every replica serves webhooks, so every replica
// needs the certificate.
func (c *Certs) NeedLeaderElection() bool { return false }

// Start keeps the certificate current until ctx ends. A failed pass is logged
// and retried on the next tick; the server has no certificate until one succeeds.
func (c *Certs) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("webhook-certs")
	for {
		wait := c.Interval
		if err := c.Sync(ctx); err != nil {
			log.Error(err, "keeping the webhook certificate")
			// Sooner while failing: the configurations may be applied just after the
			// Deployment, and readiness waits for this.
			wait = min(wait, 5*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.Clock.After(wait):
		}
	}
}

// GetCertificate serves the current certificate; it is the TLS server's hook.
func (c *Certs) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := c.cert.Load(); cert != nil {
		return cert, nil
	}
	return nil, errors.New("no webhook serving certificate yet")
}

// Ready passes once a certificate is served and its CA is in the webhook
// configurations: before that the API server could not call the webhooks.
func (c *Certs) Ready(*http.Request) error {
	if c.cert.Load() == nil {
		return errors.New("no webhook serving certificate yet")
	}
	if !c.injected.Load() {
		return errors.New("the CA is not yet in the webhook configurations")
	}
	return nil
}

// Sync issues or renews the certificate as needed, loads it, and injects the CA.
func (c *Certs) Sync(ctx context.Context) error {
	secret, err := c.ensureSecret(ctx)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return fmt.Errorf("loading the serving certificate of Secret %s/%s: %w", c.Namespace, c.SecretName, err)
	}
	c.cert.Store(&cert)
	if err := c.inject(ctx, secret.Data[keyCACert]); err != nil {
		c.injected.Store(false)
		return err
	}
	c.injected.Store(true)
	return nil
}

func (c *Certs) ensureSecret(ctx context.Context) (*corev1.Secret, error) {
	log := ctrl.LoggerFrom(ctx).WithName("webhook-certs")
	secret := &corev1.Secret{}
	err := c.Reader.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: c.SecretName}, secret)
	if apierrors.IsNotFound(err) {
		secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: c.SecretName,
				Labels: map[string]string{LabelManagedBy: managedByKiln}},
			Type: corev1.SecretTypeTLS,
		}
		if secret.Data, err = c.issue(nil); err != nil {
			return nil, err
		}
		err = c.Client.Create(ctx, secret)
		if apierrors.IsAlreadyExists(err) {
			// Another replica was first; use its certificate.
			err = c.Reader.Get(ctx, client.ObjectKeyFromObject(secret), secret)
		} else if err == nil {
			log.Info("issued the webhook serving certificate", "secret", c.SecretName)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", c.Namespace, c.SecretName, err)
	}
	reason := c.renewal(secret.Data)
	if reason == "" {
		return secret, nil
	}
	data, err := c.issue(secret.Data)
	if err != nil {
		return nil, err
	}
	secret.Data = data
	// The resourceVersion read above makes this fail if another replica renewed
	// first; the next pass then loads its certificate.
	if err := c.Client.Update(ctx, secret); err != nil {
		return nil, fmt.Errorf("renewing the webhook certificate (%s): %w", reason, err)
	}
	log.Info("renewed the webhook serving certificate", "reason", reason)
	return secret, nil
}

// renewal says why the Secret's certificate must be renewed, or "".
func (c *Certs) renewal(data map[string][]byte) string {
	leaf, err := parseCert(data[corev1.TLSCertKey])
	if err != nil {
		return "the serving certificate cannot be read: " + err.Error()
	}
	cas, err := parseCerts(data[keyCACert])
	if err != nil || len(cas) == 0 || len(data[keyCAKey]) == 0 {
		return "the CA cannot be read"
	}
	now := c.Clock.Now()
	if due(leaf, now) {
		return fmt.Sprintf("the serving certificate expires at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if due(cas[0], now) {
		return fmt.Sprintf("the CA expires at %s", cas[0].NotAfter.UTC().Format(time.RFC3339))
	}
	if err := leaf.CheckSignatureFrom(cas[0]); err != nil {
		return "the serving certificate is not signed by the CA"
	}
	for _, name := range c.DNSNames {
		if !slices.Contains(leaf.DNSNames, name) {
			return "the serving certificate does not name " + name
		}
	}
	for _, ip := range c.IPs {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return "the serving certificate does not name " + ip.String()
		}
	}
	return ""
}

// due is true once less than a third of a certificate's lifetime remains.
func due(cert *x509.Certificate, now time.Time) bool {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return now.After(cert.NotAfter.Add(-life / 3))
}

// issue makes a serving certificate, signed by the CA in old when that CA is
// still good, by a new CA otherwise. A new CA is trusted beside the old one
// until the old one expires, so clients holding either keep working.
func (c *Certs) issue(old map[string][]byte) (map[string][]byte, error) {
	now := c.Clock.Now()
	// Backdated a little, for clocks of other machines that run behind.
	backdate := min(time.Hour, c.Validity/10)
	var (
		caCert *x509.Certificate
		caKey  *ecdsa.PrivateKey
		bundle []byte
	)
	if cas, err := parseCerts(old[keyCACert]); err == nil && len(cas) > 0 && !due(cas[0], now) {
		if key, err := parseKey(old[keyCAKey]); err == nil {
			caCert, caKey, bundle = cas[0], key, old[keyCACert]
		}
	}
	if caCert == nil {
		var err error
		if caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			Subject:               pkix.Name{CommonName: "kiln-webhook-ca"},
			NotBefore:             now.Add(-backdate),
			NotAfter:              now.Add(10 * c.Validity),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := sign(tmpl, tmpl, &caKey.PublicKey, caKey)
		if err != nil {
			return nil, err
		}
		if caCert, err = x509.ParseCertificate(der); err != nil {
			return nil, err
		}
		bundle = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if olds, err := parseCerts(old[keyCACert]); err == nil {
			for _, o := range olds {
				if now.Before(o.NotAfter) {
					bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.Raw})...)
				}
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: c.DNSNames[0]},
		DNSNames:    c.DNSNames,
		IPAddresses: c.IPs,
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(c.Validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := sign(tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		keyCACert:               bundle,
		keyCAKey:                pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: caKeyDER}),
	}, nil
}

func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, key *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
}

func parseCert(data []byte) (*x509.Certificate, error) {
	certs, err := parseCerts(data)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs[0], nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out, nil
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

func parseKey(data []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no key")
	}
	return x509.ParseECPrivateKey(b.Bytes)
}

// inject writes the CA bundle into every webhook of both configurations that
// lacks it, by server-side apply under its own field owner: Kiln owns caBundle
// and nothing else, so a GitOps tool applying the static manifests (which leave
// caBundle out) neither fights over it nor sees drift.
func (c *Certs) inject(ctx context.Context, bundle []byte) error {
	mut := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Reader.Get(ctx, client.ObjectKey{Name: c.Mutating}, mut); err != nil {
		return fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", c.Mutating, err)
	}
	if slices.ContainsFunc(mut.Webhooks, func(w admissionregistrationv1.MutatingWebhook) bool {
		return !bytes.Equal(w.ClientConfig.CABundle, bundle)
	}) {
		ac := admissionregistrationv1ac.MutatingWebhookConfiguration(c.Mutating)
		for _, w := range mut.Webhooks {
			ac.WithWebhooks(admissionregistrationv1ac.MutatingWebhook().WithName(w.Name).
				WithClientConfig(admissionregistrationv1ac.WebhookClientConfig().WithCABundle(bundle...)))
		}
		if err := c.Client.Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("writing the CA into MutatingWebhookConfiguration %s: %w", c.Mutating, err)
		}
	}
	val := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Reader.Get(ctx, client.ObjectKey{Name: c.Validating}, val); err != nil {
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", c.Validating, err)
	}
	if slices.ContainsFunc(val.Webhooks, func(w admissionregistrationv1.ValidatingWebhook) bool {
		return !bytes.Equal(w.ClientConfig.CABundle, bundle)
	}) {
		ac := admissionregistrationv1ac.ValidatingWebhookConfiguration(c.Validating)
		for _, w := range val.Webhooks {
			ac.WithWebhooks(admissionregistrationv1ac.ValidatingWebhook().WithName(w.Name).
				WithClientConfig(admissionregistrationv1ac.WebhookClientConfig().WithCABundle(bundle...)))
		}
		if err := c.Client.Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("writing the CA into ValidatingWebhookConfiguration %s: %w", c.Validating, err)
		}
	}
	return nil
}
