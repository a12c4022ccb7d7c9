package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/internal/webhook"
	"kiln.dev/kiln/test/framework"
)

// Without cert-manager Kiln issues its own certificate: the webhooks become ready only once it
// is served and its CA is in the configurations, a restarted manager reuses it from the Secret,
// and the serving certificate is renewed before it expires, with no manual step. The manager
// runs as a user bound to the generated role (config/rbac/role.yaml), so a verb missing there
// fails this test.
func TestSelfManagedCertificateAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	admin := newClient(t, plane.Config, nil)
	wh := plane.Webhooks()
	// Later tests serve envtest's certificate again.
	t.Cleanup(func() { setCABundle(t, admin, wh.LocalServingCAData) })
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kiln-system"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cfg := managerIdentity(t, admin)
	o := webhook.Options{
		Enabled: true, Host: wh.LocalServingHost, Port: wh.LocalServingPort, Namespace: "kiln-system",
		CertHosts: []string{wh.LocalServingHost}, CertValidity: 45 * time.Second, CertCheckInterval: time.Second,
		Injection: injection(t),
	}
	ns := namespace(t, admin, nil)
	admitted := func(name string) {
		t.Helper()
		if err := admin.Create(ctx, trainingJob(ns, name, 0)); err != nil {
			t.Fatalf("creating TrainingJob %s: %v", name, err)
		}
	}
	secret := func() *corev1.Secret {
		t.Helper()
		s := &corev1.Secret{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: "kiln-system", Name: webhook.CertSecretName}, s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	stop := startWebhooks(t, cfg, o)
	admitted("first")
	first := secret()
	ca := first.Data["ca.crt"]
	for name, bundle := range caBundles(t, admin) {
		if !bytes.Equal(bundle, ca) {
			t.Errorf("webhook %s does not carry Kiln's CA", name)
		}
	}

	stop()
	startWebhooks(t, cfg, o)
	admitted("after-restart")
	if !bytes.Equal(secret().Data["ca.crt"], ca) {
		t.Error("the restarted manager issued a new CA instead of reusing the Secret's")
	}

	framework.Eventually(t, 90*time.Second, func() error {
		if bytes.Equal(secret().Data["tls.crt"], first.Data["tls.crt"]) {
			return fmt.Errorf("serving certificate not renewed yet")
		}
		return nil
	})
	renewed := secret()
	if !bytes.Equal(renewed.Data["ca.crt"], ca) {
		t.Error("renewing the serving certificate changed the CA")
	}
	framework.Eventually(t, 30*time.Second, func() error {
		served, err := servedCertificate(net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort)))
		if err != nil {
			return err
		}
		b, _ := pem.Decode(secret().Data["tls.crt"])
		if b == nil || !bytes.Equal(served.Raw, b.Bytes) {
			return fmt.Errorf("the server does not serve the Secret's certificate yet")
		}
		return nil
	})
	admitted("after-renewal")
}

func servedCertificate(addr string) (*x509.Certificate, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reads the certificate
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func caBundles(t *testing.T, c client.Client) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	mut := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: webhook.MutatingConfigName}, mut); err != nil {
		t.Fatal(err)
	}
	for _, w := range mut.Webhooks {
		out[w.Name] = w.ClientConfig.CABundle
	}
	val := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: webhook.ValidatingConfigName}, val); err != nil {
		t.Fatal(err)
	}
	for _, w := range val.Webhooks {
		out[w.Name] = w.ClientConfig.CABundle
	}
	return out
}

func setCABundle(t *testing.T, c client.Client, ca []byte) {
	ctx := context.Background()
	mut := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: webhook.MutatingConfigName}, mut); err != nil {
		t.Error(err)
		return
	}
	for i := range mut.Webhooks {
		mut.Webhooks[i].ClientConfig.CABundle = ca
	}
	if err := c.Update(ctx, mut); err != nil {
		t.Error(err)
	}
	val := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: webhook.ValidatingConfigName}, val); err != nil {
		t.Error(err)
		return
	}
	for i := range val.Webhooks {
		val.Webhooks[i].ClientConfig.CABundle = ca
	}
	if err := c.Update(ctx, val); err != nil {
		t.Error(err)
	}
}

// managerIdentity is a user with exactly the generated ClusterRole and Role of config/rbac.
func managerIdentity(t *testing.T, admin client.Client) *rest.Config {
	t.Helper()
	ctx := context.Background()
	const user = "kiln-manager-under-test"
	kc, err := plane.AddUser(user)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(framework.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	for {
		role := &unstructured.Unstructured{}
		if err := dec.Decode(&role.Object); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(role.Object) == 0 {
			continue
		}
		if err := admin.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: role.GetKind(), Name: role.GetName()}
		var binding client.Object = &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "under-test-" + role.GetName()}, RoleRef: ref, Subjects: subject}
		if role.GetKind() == "Role" {
			binding = &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: role.GetNamespace(), Name: "under-test-" + role.GetName()}, RoleRef: ref, Subjects: subject}
		}
		if err := admin.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	return cfg
}
