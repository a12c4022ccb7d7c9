package controlplane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Names and addresses the API server's serving certificate holds on a real node: pods reach it
// as the kubernetes Service (10.0.0.1, kubernetes.default.svc…) and verify it with the CA the
// controller manager publishes in every namespace.
var apiServerDNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}

const (
	kubernetesServiceIP = "10.0.0.1"
	clusterDNSIP        = "10.0.0.10"
	podCIDR             = "10.88.0.0/16"
)

// nodePKI is what a real node's control plane needs beyond envtest's own: a serving CA whose
// certificate names the in-cluster addresses, a service-account signing key the controller
// manager can use too, and a client certificate the API server presents to the kubelet.
type nodePKI struct {
	dir string
	// CA signs the API server's serving certificate; pods trust it as ca.crt.
	CA []byte
	// CAFile, SAKeyFile and SAPubFile are files under dir.
	CAFile, SAKeyFile, SAPubFile string
	// KubeletClientCA verifies the API server at the kubelet; KubeletClientCert/Key are its client pair.
	KubeletClientCA, KubeletClientCert, KubeletClientKey string
}

type keyPair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// writeNodePKI writes envtest's expected serving files (apiserver.crt/key, sa-signer.crt/key)
// into certDir, so envtest uses them instead of making its own, plus the kubelet client pair.
func writeNodePKI(certDir string, nodeIP net.IP) (*nodePKI, error) {
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	p := &nodePKI{dir: certDir}
	ca, err := newCA("kiln-local-ca")
	if err != nil {
		return nil, err
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(kubernetesServiceIP), nodeIP}
	serving, err := ca.sign("kube-apiserver", nil, apiServerDNSNames, ips, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	p.CA = pemCert(ca.cert)
	p.CAFile = filepath.Join(certDir, "kiln-ca.crt")
	if err := writePair(certDir, "apiserver", serving); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.CAFile, p.CA, 0o644); err != nil {
		return nil, err
	}
	// envtest's file names, so its flags (--service-account-key-file, …) point at this key.
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return nil, err
	}
	p.SAKeyFile, p.SAPubFile = filepath.Join(certDir, "sa-signer.key"), filepath.Join(certDir, "sa-signer.crt")
	if err := os.WriteFile(p.SAKeyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(sa)}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.SAPubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return nil, err
	}
	kca, err := newCA("kiln-kubelet-client-ca")
	if err != nil {
		return nil, err
	}
	// The kubelet asks the API server (SubjectAccessReview) whether this user may reach it.
	client, err := kca.sign("kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	p.KubeletClientCA = filepath.Join(certDir, "kubelet-client-ca.crt")
	if err := os.WriteFile(p.KubeletClientCA, pemCert(kca.cert), 0o644); err != nil {
		return nil, err
	}
	if err := writePair(certDir, "kubelet-client", client); err != nil {
		return nil, err
	}
	p.KubeletClientCert, p.KubeletClientKey = filepath.Join(certDir, "kubelet-client.crt"), filepath.Join(certDir, "kubelet-client.key")
	return p, nil
}

func newCA(name string) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, key: key}, nil
}

func (ca *keyPair) sign(cn string, orgs, dnsNames []string, ips []net.IP, usage x509.ExtKeyUsage) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("signing a certificate for %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, key: key}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func writePair(dir, name string, kp *keyPair) error {
	der, err := x509.MarshalPKCS8PrivateKey(kp.key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pemCert(kp.cert), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
