package push

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// ErrTooLarge: the repository's head is bigger than the fetch may write.
var ErrTooLarge = errors.New("the repository is larger than the fetch limit")

// Head is the commit branch points at in the repository at url.
func Head(ctx context.Context, url, branch string, auth transport.AuthMethod) (string, error) {
	url = strings.TrimRight(url, "/") // a trailing slash would double the one before info/refs
	remote := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{url}})
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth})
	if err != nil {
		return "", fmt.Errorf("listing the branches of %s: %w", url, err)
	}
	want := plumbing.NewBranchReferenceName(branch)
	for _, r := range refs {
		if r.Name() == want {
			return r.Hash().String(), nil
		}
	}
	return "", fmt.Errorf("%s has no branch %s", url, branch)
}

// Fetch checks the head of branch out into dir (its Git objects go to gitDir),
// fetching that one commit only, and writing at most maxBytes in all. It returns
// the commit checked out: the branch's head now, which is the pushed commit or a
// later one, so a replayed or late event never deploys an older commit.
func Fetch(ctx context.Context, url, branch, dir, gitDir string, auth transport.AuthMethod, maxBytes int64) (string, error) {
	url = strings.TrimRight(url, "/")
	b := &budget{}
	b.left.Store(maxBytes)
	storage := filesystem.NewStorage(limitFS{osfs.New(gitDir), b}, cache.NewObjectLRUDefault())
	repo, err := git.CloneContext(ctx, storage, limitFS{osfs.New(dir), b}, &git.CloneOptions{
		URL:           url,
		Auth:          auth,
		ReferenceName: plumbing.NewBranchReferenceName(branch),
		SingleBranch:  true,
		Depth:         1,
		Tags:          git.NoTags,
	})
	if b.left.Load() < 0 {
		return "", fmt.Errorf("fetching %s: %w (%d bytes)", url, ErrTooLarge, maxBytes)
	}
	if err != nil {
		return "", fmt.Errorf("fetching branch %s of %s: %w", branch, url, err)
	}
	head, err := repo.Head()
	if err != nil {
		return "", fmt.Errorf("reading the fetched head: %w", err)
	}
	// go-git points the work tree at gitDir with a .git file; the source is built without it.
	if err := os.Remove(filepath.Join(dir, ".git")); err != nil && !os.IsNotExist(err) {
		return "", err
	}
	return head.Hash().String(), nil
}

type budget struct{ left atomic.Int64 }

// limitFS counts every byte written through it against a shared budget, so a
// huge repository fails the fetch instead of filling the manager's disk.
type limitFS struct {
	billy.Filesystem
	b *budget
}

func (f limitFS) Create(name string) (billy.File, error) {
	return f.wrap(f.Filesystem.Create(name))
}

func (f limitFS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	return f.wrap(f.Filesystem.OpenFile(name, flag, perm))
}

func (f limitFS) TempFile(dir, prefix string) (billy.File, error) {
	return f.wrap(f.Filesystem.TempFile(dir, prefix))
}

func (f limitFS) Chroot(path string) (billy.Filesystem, error) {
	c, err := f.Filesystem.Chroot(path)
	if err != nil {
		return nil, err
	}
	return limitFS{c, f.b}, nil
}

func (f limitFS) wrap(file billy.File, err error) (billy.File, error) {
	if err != nil {
		return nil, err
	}
	return limitFile{file, f.b}, nil
}

type limitFile struct {
	billy.File
	b *budget
}

func (f limitFile) Write(p []byte) (int, error) {
	if f.b.left.Add(-int64(len(p))) < 0 {
		return 0, ErrTooLarge
	}
	return f.File.Write(p)
}
