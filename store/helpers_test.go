package store

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nosproject/nos/image"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Environment of helper processes: the test binary re-executed with
// helperEnv set runs runHelper instead of the tests.
const (
	helperEnv     = "NOS_STORE_TEST_HELPER"
	helperRootEnv = "NOS_STORE_TEST_ROOT"
	helperNameEnv = "NOS_STORE_TEST_NAME"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		if err := runHelper(mode, os.Getenv(helperRootEnv), os.Getenv(helperNameEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper is the body of a helper process.
//
//	lock, rlock: take the lock, print "locked", hold it until stdin closes
//	tag:         store five images name:t0..name:t4
//	tagloop:     keep re-tagging name:latest until killed
func runHelper(mode, root, name string) error {
	s, err := Open(root)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch mode {
	case "lock", "rlock":
		take := s.Lock
		if mode == "rlock" {
			take = s.RLock
		}
		unlock, err := take(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		fmt.Println("locked")
		_, err = io.Copy(io.Discard, os.Stdin)
		return err
	case "tag":
		for i := range 5 {
			tag := fmt.Sprintf("t%d", i)
			if err := storeImage(ctx, s, name, tag, name+tag); err != nil {
				return err
			}
		}
		return nil
	case "tagloop":
		for i := 0; ; i++ {
			if err := storeImage(ctx, s, name, "latest", fmt.Sprint(i)); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// helper starts the test binary as a helper process.
func helper(t *testing.T, mode, root, name string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperRootEnv+"="+root, helperNameEnv+"="+name)
	return cmd
}

// holdLock starts a helper holding the lock (mode "lock" or "rlock") and
// returns once it holds it. The returned function makes it let go and
// waits for it to exit.
func holdLock(t *testing.T, mode, root string) (release func()) {
	t.Helper()
	cmd := helper(t, mode, root, "")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("helper said %q (%v), stderr: %s", line, err, stderr.String())
	}
	return func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v, stderr: %s", err, stderr.String())
		}
	}
}

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testImage is an image written to a store by writeImage.
type testImage struct {
	manifest ocispec.Descriptor
	blobs    []ocispec.Descriptor // config and layers
	size     int64                // manifest, config and layers
}

// writeImage stores an image whose config and initramfs derive from seed
// and whose kernel is the same for every image.
func writeImage(ctx context.Context, s *Store, seed string) (testImage, error) {
	cfg, err := json.Marshal(image.Config{Entrypoint: []string{"/app", seed}, KernelCmdline: "console=ttyS0"})
	if err != nil {
		return testImage{}, err
	}
	parts := []struct {
		data      string
		mediaType string
	}{
		{string(cfg), image.MediaTypeConfig},
		{"kernel", image.MediaTypeKernel},
		{"initramfs " + seed, image.MediaTypeInitramfs},
	}
	var img testImage
	for _, p := range parts {
		d, err := s.WriteBlobBytes(ctx, []byte(p.data), p.mediaType)
		if err != nil {
			return testImage{}, err
		}
		img.blobs = append(img.blobs, d)
		img.size += d.Size
	}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: image.ArtifactType,
		Config:       img.blobs[0],
		Layers:       img.blobs[1:],
	}
	b, err := json.Marshal(m)
	if err != nil {
		return testImage{}, err
	}
	if img.manifest, err = s.WriteBlobBytes(ctx, b, ocispec.MediaTypeImageManifest); err != nil {
		return testImage{}, err
	}
	img.size += img.manifest.Size
	return img, nil
}

// storeImage writes and tags an image the way a build does: under Lock.
func storeImage(ctx context.Context, s *Store, name, tag, seed string) error {
	unlock, err := s.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	img, err := writeImage(ctx, s, seed)
	if err != nil {
		return err
	}
	return s.TagLocked(name, tag, img.manifest, time.Now())
}

// mustImage writes and tags an image or fails the test.
func mustImage(t testing.TB, s *Store, ref, seed string) testImage {
	t.Helper()
	img, err := writeImage(t.Context(), s, seed)
	if err != nil {
		t.Fatal(err)
	}
	if ref != "" {
		name, tag, err := ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Tag(t.Context(), name, tag, img.manifest, testTime); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// readIndexFile decodes index.json without the store's validation.
func readIndexFile(t testing.TB, s *Store) ocispec.Index {
	t.Helper()
	b, err := os.ReadFile(s.path(indexFile))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

// dirNames lists a directory.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
