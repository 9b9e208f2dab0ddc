package main

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// This file writes initramfs archives: the "newc" cpio format the kernel
// unpacks (Documentation/driver-api/early-userspace/buffer-format.rst),
// gzip-compressed. There is no cpio binary on the build machine, and the
// format is small:
//
//	header: "070701", then 13 fields of 8 hex digits: ino, mode, uid, gid,
//	        nlink, mtime, filesize, devmajor, devminor, rdevmajor,
//	        rdevminor, namesize (with its NUL), check (0)
//	name:   namesize bytes, NUL included, padded so header+name is a
//	        multiple of 4
//	data:   filesize bytes (a symlink's data is its target), padded to 4
//
// The archive ends with an entry named "TRAILER!!!". Every entry is owned
// by root; hard links are not used (each file is its own inode).

// Unix file type bits of the cpio mode field.
const (
	cpioDir     = 0o040000
	cpioFile    = 0o100000
	cpioSymlink = 0o120000
	cpioCharDev = 0o020000
	cpioTrailer = "TRAILER!!!"
)

// cpioEpoch is the mtime of every entry, so the same tree gives the same
// archive.
const cpioEpoch = 1767225600 // 2026-01-01T00:00:00Z

// cpioWriter writes a newc archive.
type cpioWriter struct {
	w   io.Writer
	ino uint32
	off int64
	err error
}

func newCpioWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: w, ino: 1} }

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	var n int
	n, c.err = c.w.Write(b)
	c.off += int64(n)
}

func (c *cpioWriter) pad() {
	if r := c.off % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// header writes one entry's header and name. name is relative to the
// archive root ("bin/busybox"), without a leading slash.
func (c *cpioWriter) header(name string, mode uint32, size int64, nlink, rmajor, rminor uint32) {
	if c.err == nil && (name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0)) {
		c.err = fmt.Errorf("cpio: bad entry name %q", name)
	}
	if c.err == nil && size > 0xffffffff {
		c.err = fmt.Errorf("cpio: %s is too large for newc (%d bytes)", name, size)
	}
	ino := c.ino
	c.ino++
	if name == cpioTrailer {
		ino = 0
	}
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, cpioEpoch, size, 0, 0, rmajor, rminor, len(name)+1, 0)
	c.write([]byte(h))
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad()
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm fs.FileMode) error {
	c.header(name, cpioDir|modeBits(perm), 0, 2, 0, 0)
	return c.err
}

// File adds a regular file of size bytes read from r.
func (c *cpioWriter) File(name string, perm fs.FileMode, size int64, r io.Reader) error {
	c.header(name, cpioFile|modeBits(perm), size, 1, 0, 0)
	if c.err != nil {
		return c.err
	}
	n, err := io.Copy(c.w, io.LimitReader(r, size))
	c.off += n
	if err == nil && n != size {
		err = fmt.Errorf("cpio: %s: got %d of %d bytes", name, n, size)
	}
	if err != nil {
		c.err = err
		return err
	}
	c.pad()
	return c.err
}

// Symlink adds a symbolic link to target.
func (c *cpioWriter) Symlink(name, target string) error {
	c.header(name, cpioSymlink|0o777, int64(len(target)), 1, 0, 0)
	c.write([]byte(target))
	c.pad()
	return c.err
}

// CharDev adds a character device node, e.g. dev/console (5, 1): the
// kernel opens /dev/console for init's stdin, stdout and stderr before
// init runs, so an initramfs needs it (devtmpfs is not mounted yet).
func (c *cpioWriter) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	c.header(name, cpioCharDev|modeBits(perm), 0, 1, major, minor)
	return c.err
}

// Close writes the trailer. It does not close the underlying writer.
func (c *cpioWriter) Close() error {
	c.header(cpioTrailer, 0, 0, 1, 0, 0)
	// The kernel reads in 512-byte blocks in some paths; pad like cpio(1).
	if r := c.off % 512; r != 0 {
		c.write(make([]byte, 512-r))
	}
	return c.err
}

// modeBits maps Go's permission and special bits to the unix mode bits.
func modeBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// cpioNode is an entry that is not on disk, such as a device node.
type cpioNode struct {
	Name         string
	Perm         fs.FileMode
	Major, Minor uint32
}

// writeTreeCpio writes every file, directory and symlink under root (in
// lexical order, parents before children) plus the extra device nodes,
// as a gzip-compressed newc archive.
func writeTreeCpio(w io.Writer, root string, nodes []cpioNode) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(zw, 1<<20)
	cw := newCpioWriter(bw)
	have := map[string]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		have[rel] = true
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return cw.Dir(rel, info.Mode())
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return cw.Symlink(rel, target)
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return cw.File(rel, info.Mode(), info.Size(), f)
		}
		return fmt.Errorf("cpio: %s: unsupported file type %s", p, info.Mode().Type())
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", root, err)
	}
	for _, n := range nodes {
		if dir := filepath.Dir(n.Name); dir != "." && !have[dir] {
			return fmt.Errorf("archive %s: device node %s has no parent directory", root, n.Name)
		}
		if err := cw.CharDev(n.Name, n.Perm, n.Major, n.Minor); err != nil {
			return err
		}
	}
	return errors.Join(cw.Close(), bw.Flush(), zw.Close())
}

// writeTreeCpioFile writes the archive to path, atomically.
func writeTreeCpioFile(path, root string, nodes []cpioNode) (int64, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	err = writeTreeCpio(f, root, nodes)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	st, err := os.Stat(tmp)
	if err != nil {
		return 0, err
	}
	return st.Size(), os.Rename(tmp, path)
}
