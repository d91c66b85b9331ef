package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	// ErrNotFound reports that an image or blob is not in the store.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous reports that a digest prefix matches more than one image.
	ErrAmbiguous = errors.New("ambiguous")
	// ErrInvalidReference reports a malformed image reference.
	ErrInvalidReference = errors.New("invalid reference")
	// ErrDigestMismatch reports a blob whose content does not match its
	// digest or size.
	ErrDigestMismatch = errors.New("digest mismatch")
)

// Names inside the store root.
const (
	layoutFile = "oci-layout"
	indexFile  = "index.json"
	indexTemp  = "index.json.tmp"
	lockFile   = "lock"
	tmpDir     = "tmp"
	blobsDir   = "blobs"
)

// Store is a local image store rooted at a directory. Its methods are safe
// for concurrent use by multiple goroutines and processes.
type Store struct {
	root string
}

// Open opens the store at root, creating an empty layout if there is none.
// It fails if root holds an oci-layout file of another version or an
// index.json that is not a valid store index.
func Open(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("opening store: empty root")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	s := &Store{root: abs}
	if err := s.init(); err != nil {
		return nil, fmt.Errorf("opening store %s: %w", abs, err)
	}
	return s, nil
}

// Root returns the absolute path of the store's directory.
func (s *Store) Root() string {
	return s.root
}

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

func (s *Store) init() error {
	for _, dir := range []string{s.path(blobsDir, "sha256"), s.path(tmpDir)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(s.path(lockFile), os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	if err := s.createLayout(); err != nil {
		return err
	}
	if err := s.checkLayout(); err != nil {
		return err
	}
	_, _, err = s.readIndex()
	return err
}

// createLayout creates index.json and then oci-layout unless oci-layout
// exists, so that a store with an oci-layout file always has an index.
func (s *Store) createLayout() error {
	_, err := os.Lstat(s.path(layoutFile))
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	index, err := encodeIndex(ocispec.Index{})
	if err != nil {
		return err
	}
	if err := s.createFile(indexFile, index); err != nil {
		return fmt.Errorf("creating index: %w", err)
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	if err := s.createFile(layoutFile, layout); err != nil {
		return fmt.Errorf("creating layout: %w", err)
	}
	return nil
}

func (s *Store) checkLayout() error {
	b, err := os.ReadFile(s.path(layoutFile))
	if err != nil {
		return err
	}
	var layout ocispec.ImageLayout
	if err := json.Unmarshal(b, &layout); err != nil {
		return fmt.Errorf("parsing %s: %w", layoutFile, err)
	}
	if layout.Version != ocispec.ImageLayoutVersion {
		return fmt.Errorf("unsupported image layout version %q", layout.Version)
	}
	return nil
}

// createFile atomically creates the file name in the root with the given
// content unless it exists already: the content is written to tmp/ first
// and hard-linked into place, which fails rather than replaces.
func (s *Store) createFile(name string, data []byte) error {
	f, err := os.CreateTemp(s.path(tmpDir), "new-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := writeAndSync(f, data); err != nil {
		return err
	}
	err = os.Link(f.Name(), s.path(name))
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(s.root)
}

// writeFileAtomic replaces dst with data by way of the file tmp, so that
// dst holds either its old or its new content whenever the process dies.
func writeFileAtomic(dst, tmp string, data []byte) error {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err := writeAndSync(f, data); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// writeAndSync writes data to f, makes it world-readable, flushes it to
// disk and closes f.
func writeAndSync(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir flushes a directory so that renames and links in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
