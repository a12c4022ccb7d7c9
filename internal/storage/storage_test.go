package storage

import (
	"testing"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestClassModes(t *testing.T) {
	for _, tc := range []struct {
		provisioner string
		annotation  string
		want        Modes
	}{
		{provisioner: "rancher.io/local-path", want: ReadWriteOnceOnly},
		{provisioner: "ebs.csi.aws.com", want: ReadWriteOnceOnly},
		{provisioner: "nfs.csi.k8s.io", want: ReadWriteMany},
		{provisioner: "efs.csi.aws.com", want: ReadWriteMany},
		{provisioner: "kiln.dev/local-path", want: ReadWriteMany},
		{provisioner: "example.com/unknown", want: Unknown},
		{provisioner: "example.com/unknown", annotation: "ReadWriteOnce, ReadWriteMany", want: ReadWriteMany},
		{provisioner: "nfs.csi.k8s.io", annotation: "ReadWriteOnce", want: ReadWriteOnceOnly},
	} {
		c := &storagev1.StorageClass{Provisioner: tc.provisioner}
		if tc.annotation != "" {
			c.ObjectMeta = metav1.ObjectMeta{Annotations: map[string]string{AnnotationAccessModes: tc.annotation}}
		}
		if got := ClassModes(c); got != tc.want {
			t.Errorf("ClassModes(%s, %q) = %d, want %d", tc.provisioner, tc.annotation, got, tc.want)
		}
	}
}
