package signature

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nosproject/nos/internal/fsutil"
	"github.com/nosproject/nos/internal/lockfile"
)

// Local keeps the signatures of the images of one store, by manifest
// digest: one JSON file per signed image, so they can be pushed with it.
type Local struct{ dir string }

// OpenLocal opens (making it) the signatures directory dir.
func OpenLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &Local{dir: dir}, nil
}

func (l *Local) file(dgst string) (string, error) {
	algo, hex, ok := strings.Cut(dgst, ":")
	if !ok || algo != "sha256" || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", fmt.Errorf("digest %q: want sha256:<64 hex digits>", dgst)
	}
	return filepath.Join(l.dir, hex+".json"), nil
}

// Get returns the signatures of the image with manifest digest dgst; none
// is not an error.
func (l *Local) Get(dgst string) ([]Signature, error) {
	f, err := l.file(dgst)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(f)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var sigs []Signature
	if err := json.Unmarshal(b, &sigs); err != nil {
		return nil, fmt.Errorf("signatures of %s: %w", dgst, err)
	}
	return sigs, nil
}

// Add records sigs for dgst, once each.
func (l *Local) Add(ctx context.Context, dgst string, sigs ...Signature) error {
	f, err := l.file(dgst)
	if err != nil {
		return err
	}
	unlock, err := lockfile.Lock(ctx, filepath.Join(l.dir, ".lock"), false)
	if err != nil {
		return err
	}
	defer unlock()
	have, err := l.Get(dgst)
	if err != nil {
		return err
	}
	for _, s := range sigs {
		if !slices.ContainsFunc(have, func(h Signature) bool { return h.Base64 == s.Base64 && string(h.Payload) == string(s.Payload) }) {
			have = append(have, s)
		}
	}
	return fsutil.WriteJSON(f, have)
}
