package assemble

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/initramfs"
)

// staging holds an image's files on their way to the guest: the
// initramfs every image has (the init, later the kernel modules, and a
// one-file program with the host files it expects) and, for the root disk
// layout, the tree of files that goes on the disk.
type staging struct {
	tmp     string
	archive *initramfs.Archive
	tree    *stage // nil unless the layout is OnRootDisk
	adds    []Add
	// user is the --user spec; a source may give a default.
	user     string
	packages PackageDB
	warnings []string
	log      *slog.Logger
}

// newStaging starts the initramfs with the init and what every guest
// root has, and makes the tree for a root disk.
func newStaging(initPath, tmp string, l Layout, o Options, log *slog.Logger) (*staging, error) {
	adds, err := parseAdds(o.Adds)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := &staging{tmp: tmp, archive: &initramfs.Archive{}, adds: adds, user: o.User, packages: o.Packages, log: log}
	if err := st.addGuestRoot(initPath); err != nil {
		return nil, fmt.Errorf("assembling initramfs: %w", err)
	}
	if l == OnRootDisk {
		if st.tree, err = newStage(filepath.Join(tmp, "root")); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func (st *staging) close() {
	if st.tree != nil {
		st.tree.close()
	}
}

// warnf records something the user should know about the image.
func (st *staging) warnf(format string, args ...any) {
	st.warnings = append(st.warnings, fmt.Sprintf(format, args...))
}

// stageSource has src stage its files, then adds the --add paths and
// what every image of its layout needs, and resolves the user.
func (st *staging) stageSource(ctx context.Context, src Source, cfg *image.Config) error {
	if err := src.Stage(ctx, st, cfg); err != nil {
		return err
	}
	for _, a := range st.adds {
		cfg.Added = append(cfg.Added, a.Guest)
	}
	if st.tree != nil {
		return st.finishTree(cfg)
	}
	return st.finishInitramfs(cfg)
}

// finishInitramfs adds the --add paths to the initramfs; the user is
// looked up in the /etc files nos writes.
func (st *staging) finishInitramfs(cfg *image.Config) error {
	for _, a := range st.adds {
		if err := st.addToArchive(a); err != nil {
			return err
		}
	}
	u, err := resolveUser(st.user, []byte(etcFiles["passwd"]), []byte(etcFiles["group"]))
	if err != nil {
		return err
	}
	cfg.User = u
	return nil
}

// finishTree adds the --add paths and the base of every tree image to the
// tree; the user is looked up in the tree's /etc files.
func (st *staging) finishTree(cfg *image.Config) error {
	for _, a := range st.adds {
		if err := st.tree.addAdd(a); err != nil {
			return err
		}
	}
	if err := st.tree.addBase(); err != nil {
		return err
	}
	cfg.RootFS = "erofs"
	if len(cfg.Entrypoint) == 0 {
		return fmt.Errorf("the image has no command: give --entrypoint: %w", ErrBadSource)
	}
	u, err := st.tree.lookupUser(st.user)
	if err != nil {
		return err
	}
	cfg.User = u
	return nil
}

// addGuestRoot adds the init and the directories and /etc files of the
// guest's root.
func (st *staging) addGuestRoot(initPath string) error {
	a := st.archive
	if err := a.AddHostFile(image.InitPath, initPath, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/etc"} {
		if err := a.AddDir(d, fs.ModeDir|0o755); err != nil {
			return err
		}
	}
	for name, content := range etcFiles {
		if err := a.AddFile("/etc/"+name, 0o644, []byte(content)); err != nil {
			return err
		}
	}
	return nil
}

// addProgram adds a one-file program to the initramfs as /app/NAME, with
// the host files programs expect, and makes it the default command.
func (st *staging) addProgram(cfg *image.Config, host, name string) error {
	appPath := "/app/" + name
	if st.tree != nil { // --root-disk: the tree's base brings zoneinfo and certificates
		if err := st.tree.addFile(appPath, host); err != nil {
			return fmt.Errorf("the image's root: %w", err)
		}
		if len(cfg.Entrypoint) == 0 {
			cfg.Entrypoint = []string{appPath}
		}
		return nil
	}
	if err := st.archive.AddHostFile(appPath, host, 0o755); err != nil {
		return fmt.Errorf("assembling initramfs: %w", err)
	}
	// Go programs read time zones from one zip file (ZONEINFO), which
	// takes far less guest memory than hundreds of small files.
	goApp := isGoBinary(host)
	if goApp && !hasEnv(cfg.Env, "ZONEINFO") {
		cfg.Env = append([]string{"ZONEINFO=" + zoneinfoZip}, cfg.Env...)
	}
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = []string{appPath}
	}
	return addHostExtras(st.archive, goApp)
}

// addToArchive adds an --add path to the initramfs.
func (st *staging) addToArchive(a Add) error {
	dir, mode, err := a.stat()
	if err != nil {
		return err
	}
	if dir {
		err = st.archive.AddHostTree(a.Guest, a.Host)
	} else {
		err = st.archive.AddHostFile(a.Guest, a.Host, mode.Perm())
	}
	if err != nil {
		return a.errorf(err)
	}
	return nil
}
