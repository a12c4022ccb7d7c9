package render

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// MaxJobNameLength keeps Job and Service names short enough that the pod host
// names the Job controller derives, <job>-<index>, stay valid DNS labels (63
// characters) for any index up to ten digits. CronJob uses the same limit.
const MaxJobNameLength = 52

// maxNameLength is the DNS label limit, used for names that nothing else is derived from.
const maxNameLength = 63

// JobName is the name of the Job and the headless Service of one attempt. Each
// attempt gets its own, so no worker can resolve a cached DNS record of a pod of
// an earlier attempt.
func JobName(trainingJob string, attempt int32) string {
	return name(trainingJob, "-a"+strconv.FormatInt(int64(attempt), 10), MaxJobNameLength)
}

// PVCName is the name of the checkpoints or output claim. It has no attempt in it:
// volumes outlive attempts.
func PVCName(trainingJob, purpose string) string {
	return name(trainingJob, "-"+purpose, maxNameLength)
}

// SSHSecretName is the name of the MPI SSH key Secret, shared by all attempts.
func SSHSecretName(trainingJob string) string {
	return name(trainingJob, "-ssh", maxNameLength)
}

// HostfileName is the name of the MPI hostfile ConfigMap of one attempt.
func HostfileName(jobName string) string {
	return name(jobName, "-hostfile", maxNameLength)
}

// name appends suffix to base. When the result is too long, base is cut and a
// hash of the whole base is put before the suffix: two bases that share a long
// prefix still get different names, and the suffix stays readable.
func name(base, suffix string, max int) string {
	if len(base)+len(suffix) <= max {
		return base + suffix
	}
	sum := sha256.Sum256([]byte(base))
	hash := hex.EncodeToString(sum[:])[:8]
	keep := max - len(suffix) - len(hash) - 1
	// Trimmed so a cut just after a '-' does not leave a doubled one.
	prefix := strings.TrimRight(base[:keep], "-")
	return prefix + "-" + hash + suffix
}
