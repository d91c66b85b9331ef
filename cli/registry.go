package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/nosproject/nos/internal/registry"
	"github.com/nosproject/nos/sbom"
	"github.com/nosproject/nos/signature"
	"github.com/nosproject/nos/store"
	"github.com/nosproject/nos/transfer"
)

// registryFlags are the flags of every verb that talks to a registry.
type registryFlags struct {
	insecure []string
}

func (f *registryFlags) add(fl *pflag.FlagSet) {
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "allow plain HTTP to this registry, HOST[:PORT] (repeatable; loopback registries need not be named)")
}

func (f *registryFlags) config() (registry.Config, error) {
	for _, s := range f.insecure {
		if err := registry.CheckInsecure(s); err != nil {
			return registry.Config{}, err
		}
	}
	return registry.Config{Insecure: f.insecure}, nil
}

func newPushCmd(e *env) *cobra.Command {
	var rf registryFlags
	var signKey string
	var withSBOM bool
	cmd := &cobra.Command{
		Use:   "push [--insecure-registry HOST] [--sign-key KEY] IMAGE [REF]",
		Short: "Push an image to an OCI registry",
		Long: `Push sends the stored image IMAGE to a registry as an OCI artefact (artifact
type application/vnd.nos.image.v1; config, kernel, initramfs and root disk
with nos's media types; annotations naming the kernel, its features, the
entrypoint and the creation time). REF is where it goes, HOST[:PORT]/NAME[:TAG];
without REF, IMAGE must name its registry itself. REF is also tagged locally,
pointing at the manifest as pushed, which any store that pulls it gets too.
Blobs the registry has are not sent again.

Credentials come from the docker config (nos login, docker login) and its
credential helpers. Plain HTTP is used only for loopback registries and
those named with --insecure-registry.`,
		Example: `  nos push web 127.0.0.1:5000/web:1.0
  nos push registry.example.com/team/web:1.0`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := rf.config()
			if err != nil {
				return err
			}
			src, dst := args[0], args[0]
			if len(args) == 2 {
				dst = args[1]
			} else if !transfer.IsRemote(dst) {
				return fmt.Errorf("push %s: the image names no registry: give a destination, e.g. nos push %s 127.0.0.1:5000/%s", src, src, src)
			}
			st, err := e.store()
			if err != nil {
				return err
			}
			bar := newProgress(e.stderr, "pushing "+dst)
			res, err := transfer.Push(cmd.Context(), st, src, dst, transfer.Options{Registry: cfg, Progress: bar.update})
			bar.finish()
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: digest: %s size: %d\n", dst, res.Digest, res.Size)
			if err := e.pushSignatures(cmd.Context(), st, cfg, src, dst, res.Digest.String(), signKey); err != nil {
				return err
			}
			if !withSBOM {
				return nil
			}
			// The bill of materials, of the image as pushed, as an OCI
			// referrer of its manifest.
			art, err := sbom.Referrer(cmd.Context(), st, dst, sbom.Options{Tool: "nos-" + nosVersion()})
			if err != nil {
				return fmt.Errorf("%s: the bill of materials: %w", dst, err)
			}
			d, err := transfer.PushReferrer(cmd.Context(), dst, art.MediaType, art.Data, art.Subject, transfer.Options{Registry: cfg})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: bill of materials (%s) referring to it: %s\n", dst, art.MediaType, d)
			return nil
		},
	}
	rf.add(cmd.Flags())
	cmd.Flags().BoolVar(&withSBOM, "sbom", true, "attach the image's bill of materials (SPDX) as an OCI referrer of the pushed manifest")
	cmd.Flags().StringVar(&signKey, "sign-key", "", "sign the manifest as pushed with this private key (cosign's format) and push the signature with it")
	return cmd
}

func newPullCmd(e *env) *cobra.Command {
	var rf registryFlags
	var verifyKey string
	cmd := &cobra.Command{
		Use:   "pull [--insecure-registry HOST] REF",
		Short: "Pull an image from an OCI registry",
		Long: `Pull fetches the nos image REF (HOST[:PORT]/NAME[:TAG]) into the store and tags
it REF. The manifest's digest and every blob's are checked before anything
enters the store; blobs the store has are not fetched again. A container
image is refused: build a nos image from it with nos build --from-oci.`,
		Example: `  nos pull 127.0.0.1:5000/web:1.0`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := rf.config()
			if err != nil {
				return err
			}
			st, err := e.store()
			if err != nil {
				return err
			}
			_, err = pullImage(cmd.Context(), e, e.stdout, st, cfg, args[0], verifyKey)
			return err
		},
	}
	rf.add(cmd.Flags())
	cmd.Flags().StringVar(&verifyKey, "verify-key", "", "refuse the image unless the registry has a valid signature of it by this public key (as the policy file does)")
	return cmd
}

// pullImage pulls ref and says on out what it did, as docker pull does.
// The image's signatures come along; when verifyKey or the policy asks
// for them, they are checked before anything enters the store.
func pullImage(ctx context.Context, e *env, out io.Writer, st *store.Store, cfg registry.Config, ref, verifyKey string) (transfer.Pulled, error) {
	o := transfer.Options{Registry: cfg}
	dgst, err := transfer.RemoteDigest(ctx, ref, o)
	if err != nil {
		return transfer.Pulled{}, err
	}
	sigs, err := transfer.PullSignatures(ctx, ref, dgst, o)
	if err != nil {
		return transfer.Pulled{}, err
	}
	if err := e.checkRemoteSigned(ref, dgst, sigs, verifyKey); err != nil {
		return transfer.Pulled{}, err
	}
	bar := newProgress(e.stderr, "pulling "+ref)
	o.Progress = bar.update
	res, err := transfer.Pull(ctx, st, ref, o)
	bar.finish()
	if err != nil {
		return res, err
	}
	if res.Digest.String() != dgst {
		// The tag moved between the check and the pull: what is in the
		// store now is not what was verified.
		_, _ = st.Untag(context.WithoutCancel(ctx), res.Name+":"+res.Tag)
		return res, fmt.Errorf("pull %s: the tag moved to %s while it was pulled: pull again", ref, res.Digest)
	}
	if len(sigs) > 0 {
		l, err := e.signatures()
		if err != nil {
			return res, err
		}
		if err := l.Add(ctx, dgst, sigs...); err != nil {
			return res, err
		}
		fmt.Fprintf(out, "Signatures: %d\n", len(sigs))
	}
	fmt.Fprintf(out, "Digest: %s\n", res.Digest)
	if res.UpToDate {
		fmt.Fprintf(out, "Status: Image is up to date for %s:%s\n", res.Name, res.Tag)
	} else {
		fmt.Fprintf(out, "Status: Downloaded newer image for %s:%s (%d blobs, %s)\n", res.Name, res.Tag, res.Blobs, humanSize(res.Bytes))
	}
	return res, nil
}

func newLoginCmd(e *env) *cobra.Command {
	var rf registryFlags
	var user string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [-u USER] [--password-stdin] REGISTRY",
		Short: "Log in to a registry",
		Long: `Login checks the credentials with REGISTRY (HOST[:PORT], or docker.io) and
stores them where docker login does: in the credential helper the docker
config names, else in $DOCKER_CONFIG/config.json (default
~/.docker/config.json, mode 0600). Without --password-stdin the password
is asked for on the terminal.`,
		Example: `  echo "$TOKEN" | nos login -u ci --password-stdin registry.example.com`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := rf.config()
			if err != nil {
				return err
			}
			password, err := readPassword(e, &user, passwordStdin)
			if err != nil {
				return err
			}
			where, err := transfer.Login(cmd.Context(), cfg, args[0], user, password)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "credentials stored in %s\n", where)
			fmt.Fprintln(e.stdout, "Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	rf.add(cmd.Flags())
	return cmd
}

// readPassword reads the password from stdin, or asks for the missing
// user name and the password on the terminal.
func readPassword(e *env, user *string, fromStdin bool) (string, error) {
	if fromStdin {
		if *user == "" {
			return "", errors.New("--password-stdin needs --username")
		}
		b, err := io.ReadAll(io.LimitReader(e.stdin, 64<<10))
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", errors.New("--password-stdin: standard input is empty")
		}
		return p, nil
	}
	f, ok := e.stdin.(interface{ Fd() uintptr })
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("no terminal to ask for the password on: use --password-stdin")
	}
	if *user == "" {
		fmt.Fprint(e.stderr, "Username: ")
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("reading the user name: %w", err)
		}
		*user = strings.TrimSpace(line)
	}
	fmt.Fprint(e.stderr, "Password: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return string(b), nil
}

func newLogoutCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "logout REGISTRY",
		Short: "Remove a registry's stored credentials",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			removed, err := transfer.Logout(registry.Config{}, args[0])
			if err != nil {
				return err
			}
			if removed {
				fmt.Fprintf(e.stdout, "Removing login credentials for %s\n", args[0])
			} else {
				fmt.Fprintf(e.stdout, "Not logged in to %s\n", args[0])
			}
			return nil
		},
	}
}

// pushSignatures pushes the signatures of the manifest as pushed (dgst),
// signing it first with signKey when given. Signatures of the image's
// local manifest do not carry over: push adds annotations, so the pushed
// manifest has a digest of its own, which must be signed.
func (e *env) pushSignatures(ctx context.Context, st *store.Store, cfg registry.Config, src, dst, dgst, signKey string) error {
	l, err := e.signatures()
	if err != nil {
		return err
	}
	if signKey != "" {
		s, err := e.loadSigner(signKey)
		if err != nil {
			return err
		}
		repo, _, _ := strings.Cut(dst, "@")
		if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
			repo = repo[:i]
		}
		sig, err := signature.Sign(s, repo, dgst)
		if err != nil {
			return err
		}
		if err := l.Add(ctx, dgst, sig); err != nil {
			return err
		}
	}
	sigs, err := l.Get(dgst)
	if err != nil {
		return err
	}
	if len(sigs) == 0 {
		if im, err := st.Resolve(ctx, src); err == nil && im.Manifest.Digest.String() != dgst {
			if local, _ := l.Get(im.Manifest.Digest.String()); len(local) > 0 {
				fmt.Fprintf(e.stderr, "note: %s's signatures are of its local manifest %s; the pushed manifest, with its annotations, is %s: sign it with nos push --sign-key KEY (or nos sign %s, then push again)\n", src, im.Manifest.Digest, dgst, dst)
			}
		}
		return nil
	}
	if err := transfer.PushSignatures(ctx, dst, dgst, sigs, transfer.Options{Registry: cfg}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %d signature(s) pushed as %s\n", dst, len(sigs), signature.Tag(dgst))
	return nil
}

// checkRemoteSigned refuses the image ref (manifest dgst) unless sigs
// hold a valid signature by verifyKey and by every key the policy asks of
// its name.
func (e *env) checkRemoteSigned(ref, dgst string, sigs []signature.Signature, verifyKey string) error {
	name, _, err := store.ParseReference(ref)
	if err != nil {
		return err
	}
	keys, err := e.requiredKeys(name, verifyKey)
	if err != nil {
		return err
	}
	return requireSignatures(keys, sigs, dgst, "pull "+ref)
}
