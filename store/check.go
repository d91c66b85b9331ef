package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nosproject/nos/internal/check"
)

// Problem is one thing Check found in the store.
type Problem = check.Problem

// Kinds of Problem; temporary files and unreferenced blobs are
// leftovers (nos system prune removes them).
const (
	ProblemCorrupt      = "corrupt blob"      // content does not hash to its name
	ProblemMissing      = "missing blob"      // an image refers to a blob the store lacks
	ProblemStray        = "stray file"        // in blobs/sha256 but not named by a digest, or not a file
	ProblemTemp         = "temporary file"    // a writer's leftover in tmp/, or index.json.tmp
	ProblemUnreferenced = "unreferenced blob" // no image reaches it (nos system prune removes it)
	ProblemIndex        = "bad index"         // index.json unreadable, or an entry that is not an image
)

// Check verifies the whole store under its exclusive lock (no writer runs
// meanwhile, so whatever is in tmp/ is a leftover): index.json parses and
// each of its entries is a readable manifest whose config, layers and
// nested manifests are present; every blob hashes to its name; nothing
// else lies in blobs/sha256; tmp/ is empty. With repair it removes what
// is torn or unreferenced: corrupt and stray blobs, temporary files,
// blobs no image reaches, and the tags of images that lack blobs (their
// remaining blobs then go too); each Problem says what was done.
func (s *Store) Check(ctx context.Context, repair bool) ([]Problem, error) {
	unlock, err := s.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var problems []Problem

	// Every blob: a digest name, a regular file, the right content.
	dir := s.path(blobsDir, "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	present := map[digest.Digest]bool{}
	corrupt := map[digest.Digest]bool{} // reported already
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return problems, err
		}
		p := s.path(blobsDir, "sha256", e.Name())
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil || !e.Type().IsRegular() {
			pr := Problem{Kind: ProblemStray, Path: p, Detail: "not a blob named by its sha256 digest"}
			if repair {
				pr.Remove(p)
			}
			problems = append(problems, pr)
			continue
		}
		if err := s.VerifyBlob(d, -1); err != nil {
			pr := Problem{Kind: ProblemCorrupt, Path: p, Detail: err.Error()}
			if repair {
				pr.Remove(p)
			}
			problems = append(problems, pr)
			corrupt[d] = true
			continue
		}
		present[d] = true
	}

	// The index and what its images reach.
	idx, _, err := s.readIndex()
	if err != nil {
		return append(problems, Problem{Kind: ProblemIndex, Path: s.path(indexFile), Detail: err.Error()}), nil
	}
	live := map[digest.Digest]bool{}
	var keep []ocispec.Descriptor
	for _, m := range idx.Manifests {
		name := m.Annotations[ocispec.AnnotationRefName]
		missing := s.walk(m, present, live)
		if len(missing) == 0 {
			keep = append(keep, m)
			continue
		}
		for _, d := range missing {
			if corrupt[d] && !repair {
				continue // reported as corrupt; repair removed it, and untags
			}
			pr := Problem{Kind: ProblemMissing, Path: s.BlobPath(d), Detail: fmt.Sprintf("image %s (%s) needs it", name, m.Digest)}
			if repair {
				pr.Repaired = "untagged " + name
			}
			problems = append(problems, pr)
		}
	}
	if repair && len(keep) != len(idx.Manifests) {
		idx.Manifests = keep
		if err := s.writeIndexLocked(idx); err != nil {
			return problems, fmt.Errorf("check: rewriting index.json: %w", err)
		}
		live = map[digest.Digest]bool{}
		for _, m := range keep {
			s.walk(m, present, live)
		}
	}
	var orphans []digest.Digest
	for d := range present {
		if !live[d] {
			orphans = append(orphans, d)
		}
	}
	sort.Slice(orphans, func(i, j int) bool { return orphans[i] < orphans[j] })
	for _, d := range orphans {
		pr := Problem{Kind: ProblemUnreferenced, Path: s.BlobPath(d), Detail: "no image refers to it", Leftover: true}
		if repair {
			pr.Remove(s.BlobPath(d))
		}
		problems = append(problems, pr)
	}

	// Leftovers of writers killed before they committed.
	tmps, err := os.ReadDir(s.path(tmpDir))
	if err != nil {
		return problems, err
	}
	var leftovers []string
	for _, e := range tmps {
		leftovers = append(leftovers, s.path(tmpDir, e.Name()))
	}
	if _, err := os.Lstat(s.path(indexTemp)); err == nil {
		leftovers = append(leftovers, s.path(indexTemp))
	}
	for _, p := range leftovers {
		pr := Problem{Kind: ProblemTemp, Path: p, Detail: "left by an interrupted write", Leftover: true}
		if repair {
			pr.Remove(p)
		}
		problems = append(problems, pr)
	}
	if repair {
		_ = syncDir(dir)
	}
	return problems, nil
}

// walk marks what d reaches in live and returns the digests it needs that
// are not present. An index.json entry must be a present, parseable
// manifest; its config and layers must be present; blobs a manifest
// only points at (a subject, another platform's manifest of an index)
// may be absent, as GC allows.
func (s *Store) walk(d ocispec.Descriptor, present, live map[digest.Digest]bool) []digest.Digest {
	var missing []digest.Digest
	var visit func(d ocispec.Descriptor, required bool)
	visit = func(d ocispec.Descriptor, required bool) {
		if live[d.Digest] {
			return
		}
		if !present[d.Digest] {
			if required {
				missing = append(missing, d.Digest)
			}
			return
		}
		live[d.Digest] = true
		if !manifestTypes[d.MediaType] {
			return
		}
		b, err := s.ReadBlob(d.Digest)
		var refs references
		if err == nil {
			err = json.Unmarshal(b, &refs)
		}
		if err != nil {
			if required && !errors.Is(err, ErrNotFound) {
				missing = append(missing, d.Digest)
			}
			return
		}
		if refs.Config != nil {
			visit(*refs.Config, true)
		}
		for _, l := range refs.Layers {
			visit(l, true)
		}
		for _, c := range slices.Concat(refs.Blobs, refs.Manifests) {
			visit(c, false)
		}
		if refs.Subject != nil {
			visit(*refs.Subject, false)
		}
	}
	visit(d, true)
	return missing
}
