package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/nosproject/nos/transfer"
)

func newSaveCmd(e *env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [-o FILE] IMAGE...",
		Short: "Write images to an OCI image-layout tarball",
		Long: `Save writes the images to FILE (or standard output, when it is not a terminal)
as an OCI image-layout tarball: oci-layout, index.json naming each image,
and its blobs. nos load reads it back on another machine.`,
		Example: `  nos save -o web.tar web:1.0 hello
  nos save web | ssh host nos load`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := e.store()
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				if isTerminal(e.stdout) {
					return errors.New("refusing to write an archive to a terminal: use -o FILE or redirect the output")
				}
				return transfer.Save(cmd.Context(), st, e.stdout, args)
			}
			// Written beside FILE and renamed when complete, so a failed
			// save leaves no partial archive under FILE's name.
			f, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*")
			if err != nil {
				return fmt.Errorf("save: %w", err)
			}
			defer os.Remove(f.Name())
			err = transfer.Save(cmd.Context(), st, f, args)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Chmod(f.Name(), 0o644)
			}
			if err == nil {
				err = os.Rename(f.Name(), output)
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE instead of standard output")
	return cmd
}

func newLoadCmd(e *env) *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "load [-i FILE]",
		Short: "Load images from an OCI image-layout tarball",
		Long: `Load reads an OCI image-layout tarball (as nos save writes it) from FILE or
standard input and tags its images. Every blob is checked against its
digest and every image must be complete; a damaged or modified archive is
refused and the store left as it was.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := e.store()
			if err != nil {
				return err
			}
			var r io.Reader = e.stdin
			if input != "" && input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return fmt.Errorf("load: %w", err)
				}
				defer f.Close()
				r = f
			} else if isTerminal(e.stdin) {
				return errors.New("load: standard input is a terminal: use -i FILE or redirect the input")
			}
			imgs, err := transfer.Load(cmd.Context(), st, r)
			if err != nil {
				return fmt.Errorf("load: %w", err)
			}
			for _, im := range imgs {
				fmt.Fprintf(e.stdout, "Loaded image: %s:%s\n", im.Name, im.Tag)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "read from FILE instead of standard input")
	return cmd
}
