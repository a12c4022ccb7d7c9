package build

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// WriteTarball writes img to path as an OCI image layout in a tar (oci-layout, index.json,
// blobs/sha256/...), with a Docker manifest.json beside it pointing at the same blobs, as
// `docker save` does: `docker load`, `podman load`, `ctr images import` and `skopeo` all read
// it. ref names the image inside (a tag or digest reference).
func WriteTarball(img v1.Image, ref, path string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	// Write beside the destination, then rename, so a failure leaves no half tarball.
	f, err := os.CreateTemp(filepath.Dir(path), ".kiln-image-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := writeLayoutTar(f, img, r); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// CreateTemp made it private; an image tarball is no secret.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func writeLayoutTar(w io.Writer, img v1.Image, ref name.Reference) error {
	tw := tar.NewWriter(w)
	seen := map[v1.Hash]bool{}
	blob := func(h v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
		if seen[h] {
			return nil
		}
		seen[h] = true
		rc, err := open()
		if err != nil {
			return err
		}
		defer rc.Close()
		hdr := &tar.Header{Name: "blobs/" + h.Algorithm + "/" + h.Hex, Mode: 0o644, Size: size, ModTime: epoch, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		n, err := io.Copy(tw, rc)
		if err == nil && n != size {
			err = fmt.Errorf("blob %s: %d bytes, expected %d", h, n, size)
		}
		return err
	}
	file := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}

	if err := file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := blob(cfgName, int64(len(cfg)), bytesOpener(cfg)); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var layerPaths []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		if err := blob(d, size, l.Compressed); err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
		layerPaths = append(layerPaths, "blobs/"+d.Algorithm+"/"+d.Hex)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	if err := blob(digest, int64(len(manifest)), bytesOpener(manifest)); err != nil {
		return err
	}

	annotations := map[string]string{"io.containerd.image.name": ref.Name()}
	var repoTags []string
	if t, ok := ref.(name.Tag); ok {
		annotations["org.opencontainers.image.ref.name"] = t.TagStr()
		repoTags = []string{t.Name()}
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{
			"mediaType": mt, "digest": digest.String(), "size": len(manifest), "annotations": annotations,
		}},
	})
	if err != nil {
		return err
	}
	if err := file("index.json", index); err != nil {
		return err
	}
	dockerManifest, err := json.Marshal([]map[string]any{{
		"Config":   "blobs/" + cfgName.Algorithm + "/" + cfgName.Hex,
		"RepoTags": repoTags,
		"Layers":   layerPaths,
	}})
	if err != nil {
		return err
	}
	if err := file("manifest.json", dockerManifest); err != nil {
		return err
	}
	return tw.Close()
}

func bytesOpener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}
