// Package storage says which access modes a StorageClass's volumes offer. The
// admission webhook and `kubectl kiln doctor` both read this one table, so the
// two never disagree about a provisioner.
package storage

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// AnnotationAccessModes on a StorageClass lists the access modes its volumes
// support, comma-separated, for provisioners Kiln does not know. It overrides the table.
const AnnotationAccessModes = "kiln.dev/access-modes"

// Modes is what Kiln knows of a class's volumes.
type Modes int

const (
	// Unknown: the provisioner is in neither list and the class carries no annotation.
	Unknown Modes = iota
	// ReadWriteOnceOnly: block volumes that one node mounts at a time.
	ReadWriteOnceOnly
	// ReadWriteMany: file systems every node may mount at once.
	ReadWriteMany
)

// readWriteOnce provisioners make block or node-local volumes, matched exactly.
// rancher.io/local-path is here: its volumes live on one node's disk.
var readWriteOnce = []string{
	"ebs.csi.aws.com", "kubernetes.io/aws-ebs",
	"pd.csi.storage.gke.io", "kubernetes.io/gce-pd",
	"disk.csi.azure.com", "kubernetes.io/azure-disk",
	"cinder.csi.openstack.org", "kubernetes.io/cinder",
	"rancher.io/local-path", "topolvm.io",
}

// readWriteMany are substrings of provisioners known to serve shared file systems.
// kiln.dev/local-path is the local Kiln's provisioner: on one machine a shared folder.
var readWriteMany = []string{"nfs", "cephfs", "efs.csi.aws.com", "filestore.csi.storage.gke.io",
	"file.csi.azure.com", "azurefile", "glusterfs", "lustre", "weka", "juicefs", "kiln.dev/local-path"}

// ClassModes is what the class's annotation, else the table, says of its volumes.
func ClassModes(c *storagev1.StorageClass) Modes {
	if modes, ok := c.Annotations[AnnotationAccessModes]; ok {
		if slices.Contains(strings.Split(strings.ReplaceAll(modes, " ", ""), ","), string(corev1.ReadWriteMany)) {
			return ReadWriteMany
		}
		return ReadWriteOnceOnly
	}
	return ProvisionerModes(c.Provisioner)
}

// ProvisionerModes is what the table says of a provisioner.
func ProvisionerModes(provisioner string) Modes {
	if slices.Contains(readWriteOnce, provisioner) {
		return ReadWriteOnceOnly
	}
	for _, p := range readWriteMany {
		if strings.Contains(provisioner, p) {
			return ReadWriteMany
		}
	}
	return Unknown
}
