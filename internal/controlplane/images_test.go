package controlplane

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// An image built twice from the same binary comes from the cache with the same tag; another
// binary gets another tag. Pushed to the local registry, it reads back with its entrypoint,
// user and the binary's bytes, and its blobs are on disk.
func TestBinaryImageBuildCachePushAndPull(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hello")
	if err := os.WriteFile(bin, []byte("#!/bin/true\nnot really a binary\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	spec := BinaryImage{Repo: "hello", Binary: bin, Args: []string{"-v"}, User: "65532"}
	img, tag, err := spec.Build(cache)
	if err != nil {
		t.Fatal(err)
	}
	again, tag2, err := spec.Build(cache)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if tag != tag2 || d1 != d2 {
		t.Fatalf("rebuild of the same binary: tag %s → %s, digest %s → %s", tag, tag2, d1, d2)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 1 {
		t.Fatalf("cache holds %d entries, want 1", len(entries))
	}
	if err := os.WriteFile(bin, []byte("another binary\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, tag3, err := spec.Build(cache); err != nil || tag3 == tag {
		t.Fatalf("a changed binary got tag %s (was %s), err %v", tag3, tag, err)
	}

	blobs := filepath.Join(dir, "blobs")
	reg, err := startRegistry(blobs, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.stop()
	ref, err := PushImage(reg.addr, "hello", tag, img)
	if err != nil {
		t.Fatal(err)
	}
	if want := "kiln.local/hello:" + tag; ref != want {
		t.Fatalf("PushImage returned %q, want %q", ref, want)
	}
	resolved, _ := ResolveLocalImage(ref, reg.addr)
	pref, err := name.ParseReference(resolved, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(pref)
	if err != nil {
		t.Fatal(err)
	}
	if pd, _ := pulled.Digest(); pd != d1 {
		t.Fatalf("pulled digest %s, pushed %s", pd, d1)
	}
	cf, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/hello", "-v"}, cf.Config.Entrypoint); diff != "" || cf.Config.User != "65532" {
		t.Fatalf("entrypoint (-want +got):\n%s\nuser %q", diff, cf.Config.User)
	}
	if entries, _ := os.ReadDir(blobs); len(entries) == 0 {
		t.Fatal("the registry kept no blobs on disk")
	}
}
