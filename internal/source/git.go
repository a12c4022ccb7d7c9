package source

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
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// ErrTooLarge: the repository's head is bigger than the fetch may write.
var ErrTooLarge = errors.New("the repository is larger than the fetch limit")

// ErrSuperseded: the branch no longer points at the commit to build; a later push
// builds its new head. Building only a branch's head means a replayed or late
// delivery never deploys an older commit.
var ErrSuperseded = errors.New("the branch has moved past the pushed commit")

// FetchOptions say what to fetch and where to put it.
type FetchOptions struct {
	// URL passed ParseRepositoryURL.
	URL RepositoryURL
	// Branch to fetch, and Commit it must point at ("" takes whatever it points at).
	Branch, Commit string
	// Dir receives the checkout, GitDir its Git objects.
	Dir, GitDir string
	// Auth is the Git Secret's credentials, nil for a public repository.
	Auth transport.AuthMethod
	// CABundle is PEM the host's certificate chains to, beyond the system's.
	CABundle []byte
	// MaxBytes bounds what the fetch writes, objects and checkout together.
	MaxBytes int64
}

// Fetch fetches the head of the branch (that one commit only), refuses it unless
// it is o.Commit, checks its tree with VerifyTree before writing any of it, and
// checks it out into o.Dir without .git. Submodules are never fetched. It returns
// the commit checked out.
func Fetch(ctx context.Context, o FetchOptions) (string, error) {
	url := strings.TrimRight(o.URL.String(), "/") // a trailing slash would double the one before info/refs
	b := &budget{}
	b.left.Store(o.MaxBytes)
	storage := filesystem.NewStorage(limitFS{osfs.New(o.GitDir), b}, cache.NewObjectLRUDefault())
	repo, err := git.CloneContext(ctx, storage, limitFS{osfs.New(o.Dir), b}, &git.CloneOptions{
		URL:               url,
		Auth:              o.Auth,
		CABundle:          o.CABundle,
		ReferenceName:     plumbing.NewBranchReferenceName(o.Branch),
		SingleBranch:      true,
		Depth:             1,
		Tags:              git.NoTags,
		NoCheckout:        true,
		RecurseSubmodules: git.NoRecurseSubmodules,
	})
	if b.left.Load() < 0 {
		return "", fmt.Errorf("fetching %s: %w (%d bytes)", url, ErrTooLarge, o.MaxBytes)
	}
	if err != nil {
		return "", fmt.Errorf("fetching branch %s of %s: %w", o.Branch, url, err)
	}
	head, err := repo.Head()
	if err != nil {
		return "", fmt.Errorf("reading the fetched head: %w", err)
	}
	if o.Commit != "" && head.Hash().String() != o.Commit {
		return head.Hash().String(), fmt.Errorf("branch %s is at %s, not %s: %w", o.Branch, head.Hash(), o.Commit, ErrSuperseded)
	}
	commit, err := repo.CommitObject(head.Hash())
	if err != nil {
		return "", fmt.Errorf("reading commit %s: %w", head.Hash(), err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return "", fmt.Errorf("reading the tree of %s: %w", head.Hash(), err)
	}
	// Before checkout: go-git writes symlinks as they are, so an escaping one must
	// never reach the disk where a build could follow it.
	if err := VerifyTree(tree); err != nil {
		return "", err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: head.Hash(), Force: true}); err != nil {
		if b.left.Load() < 0 {
			return "", fmt.Errorf("checking out %s: %w (%d bytes)", url, ErrTooLarge, o.MaxBytes)
		}
		return "", fmt.Errorf("checking out %s: %w", head.Hash(), err)
	}
	// go-git points the work tree at GitDir with a .git file; the source is built without it.
	if err := os.Remove(filepath.Join(o.Dir, ".git")); err != nil && !os.IsNotExist(err) {
		return "", err
	}
	return head.Hash().String(), nil
}

type budget struct{ left atomic.Int64 }

// limitFS counts every byte written through it against a shared budget, so a
// huge repository fails the fetch instead of filling the build's disk.
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
