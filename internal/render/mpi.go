package render

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MPI runs as in the MPI Operator's SSH mode, but inside one Indexed Job: every
// pod runs sshd (as the image's non-root user, on MPISSHPort), and pod 0 is both the launcher and the first worker. A single
// pod template cannot give the launcher fewer GPUs than the workers, and a
// launcher that also trains wastes nothing. The Job's success policy ends the
// job when pod 0 exits successfully.

// Keys of the SSH Secret and the hostfile ConfigMap.
const (
	sshPrivateKeyFile = "id_ed25519"
	sshPublicKeyFile  = "id_ed25519.pub"
	sshConfigKey      = "config"
	sshdConfigKey     = "sshd_config"
	hostfileKey       = "hostfile"
)

// sshConfig lets mpirun reach workers on sshd's port with Kiln's key. Their host
// keys are generated at start and so cannot be known in advance; it retries while
// their sshd starts. Open MPI passes it to ssh with -F (OMPI_MCA_plm_rsh_args).
var sshConfig = fmt.Sprintf(`Host *
  Port %d
  IdentityFile %s/%s
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  ConnectionAttempts 30
  LogLevel ERROR
`, MPISSHPort, SSHDir, sshPrivateKeyFile)

// sshdConfig runs sshd as the image's user: a high port, a host key in a
// writable folder, Kiln's key as the only way in. A non-root sshd can log in
// only its own user, which is the one mpirun connects as. StrictModes is off
// because the key files are root's, read through the pod's group.
var sshdConfig = fmt.Sprintf(`Port %[1]d
HostKey %[2]s/ssh_host_ed25519_key
PidFile %[2]s/sshd.pid
AuthorizedKeysFile %[3]s/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
`, MPISSHPort, SSHDDir, SSHDir)

// mpiEntrypoint wraps the user's command ("$@"): workers serve SSH until the Job
// ends them; pod 0 starts sshd too, waits until every host in the hostfile
// resolves, and runs the command. ssh and sshd look the user up in /etc/passwd,
// so the image needs an entry for the user it runs as.
const mpiEntrypoint = `set -e
if [ ! -x /usr/sbin/sshd ]; then
  echo "kiln: framework mpi needs /usr/sbin/sshd (openssh-server) in the image" >&2
  exit 1
fi
if ! id -un >/dev/null 2>&1; then
  echo "kiln: framework mpi needs a user in the image's /etc/passwd for uid $(id -u): ssh and sshd look it up" >&2
  exit 1
fi
[ -f ` + SSHDDir + `/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N "" -f ` + SSHDDir + `/ssh_host_ed25519_key
if [ "$KILN_NODE_RANK" != 0 ]; then
  exec /usr/sbin/sshd -D -e -f ` + SSHDir + `/` + sshdConfigKey + `
fi
/usr/sbin/sshd -e -f ` + SSHDir + `/` + sshdConfigKey + `
for host in $(cut -d' ' -f1 "$KILN_HOSTFILE"); do
  tries=0
  until getent hosts "$host" >/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 600 ]; then
      echo "kiln: $host did not resolve within 10 minutes" >&2
      exit 1
    fi
    sleep 1
  done
done
exec "$@"
`

func (r *renderer) hostfile() *corev1.ConfigMap {
	var b strings.Builder
	for i := range int(r.shape.Nodes) {
		fmt.Fprintf(&b, "%s slots=%d\n", r.host(i), r.shape.ProcessesPerNode)
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: r.meta(HostfileName(r.job), r.labels(), true),
		Data:       map[string]string{hostfileKey: b.String()},
	}
}

func (r *renderer) sshSecret() (*corev1.Secret, error) {
	key := r.opts.SSHKey
	if key == nil {
		rnd := r.opts.Rand
		if rnd == nil {
			rnd = rand.Reader
		}
		var err error
		if key, err = GenerateSSHKey(rnd); err != nil {
			return nil, err
		}
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: r.meta(SSHSecretName(r.tj.Name), r.sharedLabels(), true),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			sshPrivateKeyFile: key.PrivateKey,
			sshPublicKeyFile:  key.PublicKey,
			"authorized_keys": key.PublicKey,
			sshConfigKey:      []byte(sshConfig),
			sshdConfigKey:     []byte(sshdConfig),
		},
	}, nil
}

// SSHKey is an MPI key pair in OpenSSH's formats.
type SSHKey struct {
	// PrivateKey is an unencrypted OPENSSH PRIVATE KEY PEM block.
	PrivateKey []byte
	// PublicKey is an authorized_keys line.
	PublicKey []byte
}

// SSHKeyFromSecret returns the key pair a rendered Secret holds, or nil when it
// holds none, so the controller can keep a key across renderings.
func SSHKeyFromSecret(s *corev1.Secret) *SSHKey {
	if s == nil || len(s.Data[sshPrivateKeyFile]) == 0 || len(s.Data[sshPublicKeyFile]) == 0 {
		return nil
	}
	return &SSHKey{PrivateKey: s.Data[sshPrivateKeyFile], PublicKey: s.Data[sshPublicKeyFile]}
}

// GenerateSSHKey makes an Ed25519 key pair from random. The same bytes give the
// same key, which keeps golden files stable.
//
// The private key is written in OpenSSH's own format (PROTOCOL.key), the only one
// OpenSSH reads Ed25519 keys from; golang.org/x/crypto/ssh would write it too, but
// draws its check bytes from crypto/rand.
func GenerateSSHKey(random io.Reader) (*SSHKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	check := make([]byte, 4)
	if _, err := io.ReadFull(random, seed); err != nil {
		return nil, fmt.Errorf("generate SSH key: %w", err)
	}
	if _, err := io.ReadFull(random, check); err != nil {
		return nil, fmt.Errorf("generate SSH key: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)

	var pubBlob bytes.Buffer
	putString(&pubBlob, []byte("ssh-ed25519"))
	putString(&pubBlob, pub)

	var secret bytes.Buffer
	secret.Write(check) // the same check value twice tells a reader decryption worked
	secret.Write(check)
	putString(&secret, []byte("ssh-ed25519"))
	putString(&secret, pub)
	putString(&secret, priv)
	putString(&secret, []byte("kiln"))
	for i := byte(1); secret.Len()%8 != 0; i++ {
		secret.WriteByte(i)
	}

	var body bytes.Buffer
	body.WriteString("openssh-key-v1\x00")
	putString(&body, []byte("none")) // cipher
	putString(&body, []byte("none")) // key derivation
	putString(&body, nil)            // key derivation options
	_ = binary.Write(&body, binary.BigEndian, uint32(1))
	putString(&body, pubBlob.Bytes())
	putString(&body, secret.Bytes())

	return &SSHKey{
		PrivateKey: pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: body.Bytes()}),
		PublicKey:  []byte("ssh-ed25519 " + base64.StdEncoding.EncodeToString(pubBlob.Bytes()) + " kiln\n"),
	}, nil
}

// putString writes an SSH wire-format string: a big-endian length, then the bytes.
func putString(b *bytes.Buffer, s []byte) {
	_ = binary.Write(b, binary.BigEndian, uint32(len(s)))
	b.Write(s)
}
