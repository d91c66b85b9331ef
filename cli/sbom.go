package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/nosproject/nos/sbom"
)

func newSBOMCmd(e *env) *cobra.Command {
	var format, out string
	cmd := &cobra.Command{
		Use:   "sbom [--format spdx-json|cyclonedx-json] [-o FILE] IMAGE",
		Short: "Print an image's bill of materials (SPDX or CycloneDX JSON)",
		Long: `Sbom lists what an image is made of, read from the image alone: the Go
version, main module and module dependencies of every Go program in it
(nos-init included), the files a dynamically linked program brought from
the build host with the Debian package and version each came from (as the
build recorded them), the files added with --add with their checksums, the
kernel (version, origin, features, configuration hash) and, for an image
built from a container image, its reference and digest.

The same image gives the same document: its time is SOURCE_DATE_EPOCH when
set, else 1970-01-01T00:00:00Z, and its identifiers derive from the image's
digest. Reading a root disk needs fsck.erofs (erofs-utils).`,
		Example: `  nos sbom web
  nos sbom --format cyclonedx-json -o web.cdx.json web`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := sbom.ParseFormat(format)
			if err != nil {
				return fmt.Errorf("--format %w", err)
			}
			o := sbom.Options{Format: f, Tool: "nos-" + nosVersion()}
			if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return fmt.Errorf("SOURCE_DATE_EPOCH=%s: want seconds since 1970", s)
				}
				o.Created = time.Unix(n, 0)
			}
			st, err := e.store()
			if err != nil {
				return err
			}
			b, err := sbom.Generate(cmd.Context(), st, args[0], o)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = e.stdout.Write(b)
				return err
			}
			return writeFileAtomic(out, b)
		},
	}
	cmd.Flags().StringVar(&format, "format", string(sbom.SPDXJSON), "document format: spdx-json or cyclonedx-json")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the document to FILE instead of standard output")
	return cmd
}

// writeFileAtomic writes b to path through a temporary file in its
// directory, so that a failure leaves no half-written file.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
