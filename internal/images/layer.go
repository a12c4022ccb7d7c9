package images

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Epoch is the modification time of every file in a layer Kiln writes, so that the same
// directory always gives the same layer digest, whenever and wherever it is built.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// TarOptions say how a directory becomes a layer.
type TarOptions struct {
	// Prefix is the path in the image the directory's contents go under ("" for the root).
	Prefix string
	// Skip leaves out files and folders whose slash-separated path relative to the directory
	// matches; a skipped folder keeps nothing under it, a folder kept empty is written.
	Skip func(rel string, dir bool) bool
	// Normalize makes uid/gid 0 own every file and normalises permissions to 0644
	// (0755 for folders and executables), as for source files whose checkout owner and umask
	// should not matter. Otherwise the files keep their numeric owners and modes, as a root
	// filesystem must.
	Normalize bool
}

// WriteTar writes the directory root as a tar stream: entries in sorted order, every mtime
// Epoch, numeric owners without names, hard links kept as links, device nodes, fifos and
// sockets left out (the container runtime provides /dev).
func WriteTar(w io.Writer, root string, o TarOptions) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{} // (device, inode) -> first name of a hard-linked file
	prefix := strings.Trim(o.Prefix, "/")
	if prefix != "" {
		// The parents of the prefix, so that the layer makes them with sane modes.
		parts := strings.Split(prefix, "/")
		for i := range parts {
			hdr := &tar.Header{Typeflag: tar.TypeDir, Name: strings.Join(parts[:i+1], "/") + "/", Mode: 0o755, ModTime: Epoch, Format: tar.FormatPAX}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		}
	}
	var walk func(dir, rel string) error
	walk = func(dir, rel string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
		for _, e := range entries {
			full, r := filepath.Join(dir, e.Name()), path.Join(rel, e.Name())
			info, err := os.Lstat(full)
			if err != nil {
				return err
			}
			mode := info.Mode()
			if o.Skip != nil && o.Skip(r, mode.IsDir()) {
				continue
			}
			if mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0 {
				continue
			}
			var target string
			if mode&fs.ModeSymlink != 0 {
				if target, err = os.Readlink(full); err != nil {
					return err
				}
			}
			hdr, err := tar.FileInfoHeader(info, target)
			if err != nil {
				return fmt.Errorf("%s: %w", full, err)
			}
			hdr.Name = path.Join(prefix, r)
			if mode.IsDir() {
				hdr.Name += "/"
			}
			hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = Epoch, time.Time{}, time.Time{}
			hdr.Uname, hdr.Gname = "", ""
			hdr.Format = tar.FormatPAX
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
				if mode.IsRegular() && st.Nlink > 1 {
					key := [2]uint64{uint64(st.Dev), st.Ino}
					if first, ok := links[key]; ok {
						hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
					} else {
						links[key] = hdr.Name
					}
				}
			}
			if o.Normalize {
				hdr.Uid, hdr.Gid = 0, 0
				hdr.Mode = 0o644
				if mode.IsDir() || mode&0o111 != 0 {
					hdr.Mode = 0o755
				}
				if mode&fs.ModeSymlink != 0 {
					hdr.Mode = 0o777
				}
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			switch {
			case mode.IsDir():
				if err := walk(full, r); err != nil {
					return err
				}
			case mode.IsRegular() && hdr.Typeflag == tar.TypeReg:
				if err := copyFile(tw, full); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(root, ""); err != nil {
		return err
	}
	return tw.Close()
}

func copyFile(w io.Writer, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
